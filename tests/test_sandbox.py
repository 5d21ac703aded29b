"""Untrusted code runs sandboxed: each hostile submission costs only its own marks, says why,
and leaves every other file, grade and submission of the course untouched.

The hostile students below are graded together, in parallel, through the real pipeline
(nbgrader autograde via `dlcourse.autograde.autograde_all`) on the first worksheet.
"""

from __future__ import annotations

import ast
import json
import os
import socket
import subprocess
import sys
import time
from pathlib import Path

import nbformat
import pytest
from helpers import generated_course, submit, tree_hashes

from dlcourse.grader import cells, sandbox
from dlcourse.grader.course import Course
from dlcourse.grader.driver import autograde_all
from dlcourse.notebooks import KERNELSPEC

WORKSHEET = "ws01_tensors"
# Written by the grader, so allowed to change; everything else must stay byte-identical.
GRADER_OUTPUTS = ("autograded/", "feedback/", "staged/", "grading/", "gradebook.db")
# Tighter than the course defaults, so the slow cases stay quick; still ample for ws01.
TEST_LIMITS = """
c.Execute.timeout = 20
c.SandboxedExecute.limits = dict(c.SandboxedExecute.limits, memory_mb=4096, processes=256)
"""


def course_files(course: Course) -> dict[str, str]:
    return {k: v for k, v in tree_hashes(course.root).items() if not k.startswith(GRADER_OUTPUTS)}


def hostile_answers(reference: dict[str, str], last: str, port: int) -> dict[str, dict]:
    """student -> (answers replacing the reference ones, whether the last exercise is lost)."""
    course_root = "os.path.abspath(os.path.join(os.getcwd(), '..', '..', '..'))"
    keep = reference[last]
    return {
        "fork_bomb": {last: "import os\n\nwhile True:\n    os.fork()\n"},
        "memory_hog": {last: "hog = []\nwhile True:\n    hog.append(bytearray(2**27))\n"},
        "cpu_spin": {last: "while True:\n    pass\n"},
        "sys_exit": {last: "import sys\n\nsys.exit('bye')\n"},
        "os_exit": {last: "import os\n\nos._exit(3)\n"},
        "output_flood": {
            last: keep + "\nfor i in range(200_000):\n    print('spam', i)\nprint('x' * 2**25)\n"
        },
        "image_flood": {
            last: keep + "\nimport os\nfrom IPython.display import Image, display\n\n"
            "display(Image(data=os.urandom(2**25), format='png'))\n"
        },
        "network": {
            last: keep
            + f"""
import socket
try:
    socket.create_connection(("127.0.0.1", {port}), timeout=3).sendall(b"stolen")
    print("CONNECTED")
except OSError as err:
    print("no network:", err)
"""
        },
        "vandal": {
            last: keep
            + f"""
import os, shutil
root = {course_root}
for target in ["gradebook.db", "source/{WORKSHEET}/{WORKSHEET}.ipynb", "release/x.ipynb"]:
    try:
        with open(os.path.join(root, target), "wb") as f:
            f.write(b"pwned")
        print("WROTE", target)
    except OSError as err:
        print("could not write", target, type(err).__name__)
shutil.rmtree(root, ignore_errors=True)
print("still here:", os.path.exists(os.path.join(root, "gradebook.db")))
"""
        },
        "spy": {
            last: keep
            + f"""
import glob, os
root = {course_root}
found = glob.glob(os.path.join(root, "source", "**", "*.ipynb"), recursive=True)
found += glob.glob(os.path.join(root, "submitted", "**", "*.ipynb"), recursive=True)
print("LEAKED" if found else "nothing to read", len(found))
print("LEAKED" if os.environ.get("{SECRET_NAME}") else "no secrets")
"""
        },
        "patcher": {
            last: "import numpy as np\n\n"
            "np.testing.assert_allclose = lambda *args, **kwargs: None\n"
            "np.testing.assert_array_equal = lambda *args, **kwargs: None\n\n"
            "def ema_update(average, value, decay):\n    return average\n"
        },
    }


SECRET_NAME = "INSTRUCTOR_API_TOKEN"  # set in the grader's environment by the test
LOSES_LAST = {"fork_bomb", "memory_hog", "cpu_spin", "sys_exit", "os_exit", "patcher"}
EXPECTED_NOTES = {
    "memory_hog": "ran out of memory",
    "cpu_spin": "per-cell time limit",
    "os_exit": "crashed the kernel",
    "fork_bomb": "crashed the kernel or cut it off",
    "patcher": "some tests failed",
    "output_flood": "too large to keep",
    "image_flood": "too large to keep",
}


def with_huge_image(nb: nbformat.NotebookNode, megabytes: int = 30) -> nbformat.NotebookNode:
    """A submission that carries a huge image in a cell output (saved with outputs)."""
    import base64
    import os

    picture = base64.b64encode(os.urandom(megabytes * 2**20 * 3 // 4)).decode()
    cell = next(c for c in nb.cells if c.cell_type == "code")
    cell.outputs = [
        nbformat.v4.new_output("display_data", data={"image/png": picture, "text/plain": "x"})
    ]
    return nb


def printed(path: Path) -> str:
    """Everything the graded notebook's cells printed (not their source)."""
    nb = nbformat.read(path, as_version=4)
    return "".join(o.get("text", "") for c in nb.cells if c.cell_type == "code" for o in c.outputs)


@pytest.fixture
def listener():
    server = socket.socket()
    server.bind(("127.0.0.1", 0))
    server.listen()
    server.settimeout(0.5)
    yield server
    server.close()


def test_all_protections_are_on_here():
    prot = sandbox.protections()
    assert not prot.off, f"{prot.summary()} (CI installs bubblewrap and runs as root; see .ci/run)"
    assert "CPU and memory budget per kernel: cgroup v" in prot.summary()


def test_missing_bubblewrap_is_said_loudly(monkeypatch):
    real_which = sandbox.shutil.which
    monkeypatch.setattr(sandbox.shutil, "which", lambda n: None if n == "bwrap" else real_which(n))
    sandbox.protections.cache_clear()
    try:
        prot = sandbox.protections()
    finally:
        sandbox.protections.cache_clear()
    assert not prot.filesystem and "filesystem isolation" in prot.summary()
    assert "OFF" in prot.summary() and "apt-get install bubblewrap" in prot.summary()
    assert prot.network == (prot.how.startswith("unshare"))
    assert prot.warning() and "without filesystem isolation" in prot.warning()


def test_a_non_root_grader_is_isolated_and_says_what_is_shared():
    """The hub's grader account: bubblewrap without a user of its own per kernel. Isolated,
    so never "OFF" nor a warning; the one thing off is named."""
    prot = sandbox.Protections(True, True, True, True, False, "bubblewrap", cgroup="v2")
    text = prot.summary()
    assert "OFF" not in text and prot.warning() is None, text
    assert "on: filesystem isolation, network isolation, process isolation" in text
    assert text.endswith("off: a user of its own per kernel (else the process limit is shared)")


def test_sandbox_switched_off_is_said_loudly(monkeypatch):
    monkeypatch.setenv(sandbox.SANDBOX_ENV, "0")
    sandbox.protections.cache_clear()
    try:
        prot = sandbox.protections()
    finally:
        sandbox.protections.cache_clear()
    assert len(prot.off) == 6 and prot.summary().startswith("sandbox: OFF")
    cmd = [sys.executable, "-c", "print(1)"]
    scratch = sandbox.Scratch(Path("/x"), Path("/x/w"), Path("/x/h"), Path("/x/i"))
    env = {"PATH": "/usr/bin"}
    wrapped = sandbox.wrap_command(cmd, scratch, Path("/c"), sandbox.Limits(), prot, 1, env)
    assert wrapped[-3:] == cmd and wrapped[0] == "env"


def test_doctor_reports_the_sandbox():
    result = subprocess.run(
        [sys.executable, "-m", "dlcourse", "doctor"], capture_output=True, text=True, check=False
    )
    assert "sandbox:" in result.stdout, result.stdout


@pytest.mark.slow
def test_hostile_submissions_cost_only_their_own_marks(tmp_path, listener, monkeypatch):
    monkeypatch.setenv(SECRET_NAME, "s3cret-token")
    course = generated_course(tmp_path / "course", [WORKSHEET], TEST_LIMITS)
    release = course.release_notebooks(WORKSHEET)
    (name, release_nb), (source_nb,) = (
        next(iter(release.items())),
        course.source_notebooks(WORKSHEET).values(),
    )
    reference = cells.reference_answers(source_nb)
    full = cells.grade_cells(source_nb)
    last = cells.solution_ids(source_nb)[-1]  # the last autograded answer (not a written one)
    lost = set(cells.tests_of(source_nb, last))
    assert lost

    port = listener.getsockname()[1]
    students = hostile_answers(reference, last, port)
    expected = {}
    for student, answers in students.items():
        submit(course, WORKSHEET, student, {name: cells.answered(release_nb, reference | answers)})
        loses = student in LOSES_LAST
        expected[student] = {g: (0.0 if loses and g in lost else p) for g, p in full.items()}
    submit(
        course,
        WORKSHEET,
        "huge_image",
        {name: with_huge_image(cells.answered(release_nb, reference))},
    )
    expected["huge_image"] = dict(full)
    submit(course, WORKSHEET, "bystander", {name: cells.answered(release_nb, reference)})
    expected["bystander"] = dict(full)

    before = course_files(course)
    outcomes = {
        o.student: o for o in autograde_all(course, WORKSHEET, list(expected), release, workers=2)
    }
    after = course_files(course)

    assert after == before, "hostile code changed the course directory"
    with pytest.raises(TimeoutError):
        listener.accept()  # nobody reached the host's loopback
    for student, want in expected.items():
        got = course.scores(WORKSHEET, student)
        log = course.log(WORKSHEET, student).read_text()[-3000:]
        assert got == pytest.approx(want), f"{student}: {got} != {want}\n{log}"
    for student, phrase in EXPECTED_NOTES.items():
        assert any(phrase in note for note in outcomes[student].notes), (
            student,
            outcomes[student].notes,
        )

    graded = {s: course.autograded(s, WORKSHEET) / f"{name}.ipynb" for s in expected}
    assert "LEAKED" not in printed(graded["spy"]) and "nothing to read" in printed(graded["spy"])
    assert "no secrets" in printed(graded["spy"])
    assert "CONNECTED" not in printed(graded["network"])
    assert "no network" in printed(graded["network"])
    assert "WROTE" not in printed(graded["vandal"])
    assert "could not write" in printed(graded["vandal"])
    for student in ("output_flood", "image_flood", "huge_image"):
        size = graded[student].stat().st_size
        assert size < 2_000_000, f"{student}: autograded notebook of {size} bytes"


def notebook(*sources: str, test_cells: tuple[int, ...] = ()) -> nbformat.NotebookNode:
    nb = nbformat.v4.new_notebook()
    nb.metadata["kernelspec"] = dict(KERNELSPEC)
    nb.cells = [nbformat.v4.new_code_cell(src) for src in sources]
    for i in test_cells:
        nb.cells[i].metadata["nbgrader"] = {"grade": True, "solution": False, "points": 1}
    return nb


def run_sandboxed(nb: nbformat.NotebookNode, folder: Path, **traits) -> nbformat.NotebookNode:
    from dlcourse.grader.execute import SandboxedExecute

    resources = {"metadata": {"path": str(folder)}, "nbgrader": {"assignment": "demo"}}
    executed, _ = SandboxedExecute(**traits).preprocess(nb, resources)
    return executed


def printed_cells(nb: nbformat.NotebookNode) -> str:
    return "".join(o.get("text", "") for c in nb.cells if c.cell_type == "code" for o in c.outputs)


def error_names(cell) -> list[str]:
    return [o.ename for o in cell.outputs if o.output_type == "error"]


@pytest.mark.slow
def test_a_notebook_past_its_time_limit_stops_with_a_reason(tmp_path):
    nb = notebook("x = 1", "import time\ntime.sleep(30)", "print('after', x)")
    executed = run_sandboxed(nb, tmp_path, timeout=60, limits={"notebook_seconds": 8})
    assert "CellTimeoutError" in error_names(executed.cells[1])  # interrupted, as nbgrader does
    assert error_names(executed.cells[2]) == ["NotebookTimeLimitError"]
    assert "8 s time limit" in executed.cells[2].outputs[0].evalue
    assert not [o for o in executed.cells[2].outputs if o.output_type == "stream"]


@pytest.mark.slow
def test_a_kernel_writes_only_to_its_scratch_copy(tmp_path):
    (tmp_path / "handout.txt").write_text("data shipped with the assignment\n")
    nb = notebook(
        "print(open('handout.txt').read().strip())\n"
        "open('handout.txt', 'w').write('overwritten')\n"
        "open('new.txt', 'w').write('new')"
    )
    executed = run_sandboxed(nb, tmp_path, timeout=60)
    assert "data shipped with the assignment" in printed_cells(executed)
    assert (tmp_path / "handout.txt").read_text() == "data shipped with the assignment\n"
    assert not (tmp_path / "new.txt").exists()


def test_limits_per_assignment_override_the_defaults():
    base = sandbox.Limits(memory_mb=1000, cpu_seconds=10)
    special = {"ws05_cnn": {"memory_mb": 3000}}
    assert sandbox.limits_for("ws05_cnn", base, special) == sandbox.Limits(3000, 10)
    assert sandbox.limits_for("ws01_tensors", base, special) == base


@pytest.mark.slow
def test_without_filesystem_isolation_grading_refuses_unless_told(tmp_path, monkeypatch):
    real_which = sandbox.shutil.which
    monkeypatch.setattr(sandbox.shutil, "which", lambda n: None if n == "bwrap" else real_which(n))
    monkeypatch.delenv("DLCOURSE_ALLOW_UNSANDBOXED", raising=False)
    sandbox.protections.cache_clear()
    try:
        assert not sandbox.protections().filesystem
        reason = sandbox.refusal()
        assert reason and "apt-get install bubblewrap" in reason
        assert "DLCOURSE_ALLOW_UNSANDBOXED=1" in reason
        with pytest.raises(sandbox.SandboxUnavailable):
            run_sandboxed(notebook("print('graded', 6 * 7)"), tmp_path, timeout=60)
        with pytest.raises(sandbox.SandboxUnavailable):
            autograde_all(Course(tmp_path), WORKSHEET, ["x"], {}, workers=1)
        monkeypatch.setenv("DLCOURSE_ALLOW_UNSANDBOXED", "1")  # the loud, explicit opt-out
        assert sandbox.refusal() is None
        executed = run_sandboxed(notebook("print('graded', 6 * 7)"), tmp_path, timeout=60)
    finally:
        sandbox.protections.cache_clear()
    assert "graded 42" in printed_cells(executed)


@pytest.mark.slow
def test_a_grading_run_past_its_wall_clock_is_stopped_and_said(tmp_path):
    from dlcourse.grader.driver import autograde_one

    course = generated_course(tmp_path / "course", [WORKSHEET])
    release = course.release_notebooks(WORKSHEET)
    submit(course, WORKSHEET, "slow", release)
    course.staged().symlink_to(course.submitted())
    start = time.monotonic()
    outcome = autograde_one(course, WORKSHEET, "slow", wall_clock=3)
    assert time.monotonic() - start < 30
    assert not outcome.ok and outcome.timed_out


@pytest.mark.slow
def test_data_behind_a_symlink_is_readable_in_the_sandbox(tmp_path, monkeypatch):
    from dlcourse import data

    real = data.find("mnist").location
    (tmp_path / "alias").symlink_to(real, target_is_directory=True)
    monkeypatch.setenv(data.DATA_ENV, str(tmp_path / "alias"))
    work = tmp_path / "work"
    work.mkdir()
    code = "from dlcourse import data\nprint('found at', data.find('mnist').location)"
    executed = run_sandboxed(notebook(code), work, timeout=60)
    # Found where it was asked for, not in a later place of the search order.
    assert f"found at {tmp_path / 'alias'}\n" in printed_cells(executed), executed.cells[0].outputs


# Variables a grader, the hub's formgrader service or a Dask worker may run with; some share a
# prefix with what a kernel needs (TF_ is TensorFlow's and Terraform's, JPY_ is Jupyter's).
SECRETS = {
    "JPY_API_TOKEN": "jpy-api-token-value-1",
    "JUPYTERHUB_API_TOKEN": "hub-api-token-value-2",
    "JUPYTERHUB_COOKIE_SECRET": "cookie-secret-value-3",
    "CONFIGPROXY_AUTH_TOKEN": "proxy-token-value-4",
    "TF_TOKEN_app_terraform_io": "terraform-token-value-5",
    "TF_VAR_db_password": "terraform-var-value-6",
    "DLCOURSE_DB_URL": "postgresql://grader:db-password-value-7@db/dlcourse",
    "DLCOURSE_HUB_TEST_PASSWORD": "hub-password-value-8",
    "NBGRADER_SECRET": "nbgrader-secret-value-9",
    "PGPASSWORD": "pg-password-value-10",
    "OMP_SECRET": "omp-lookalike-value-11",
}


def test_the_kernel_environment_is_an_allow_list_of_exact_names(tmp_path):
    scratch = sandbox.Scratch(tmp_path, tmp_path / "w", tmp_path / "h", tmp_path / "i")
    # What a Dask nanny or a hub sets (thread counts, a hash seed) is the grader's to decide.
    inherited = {"OMP_NUM_THREADS": "7", "PYTHONHASHSEED": "6640", "TF_NUM_INTRAOP_THREADS": "9"}
    given = SECRETS | inherited | {"LANG": "C.UTF-8", "TF_ENABLE_ONEDNN_OPTS": "1"}
    env = sandbox.kernel_environment(scratch, given, sandbox.Limits(cpus=2))
    assert not set(SECRETS) & set(env), sorted(set(SECRETS) & set(env))
    assert not [v for v in SECRETS.values() if v in str(env)]
    assert env["LANG"] == "C.UTF-8" and env["TF_ENABLE_ONEDNN_OPTS"] == "1"
    assert env["OMP_NUM_THREADS"] == env["TF_NUM_INTRAOP_THREADS"] == "2"
    assert env["PYTHONHASHSEED"] == "0"
    assert sandbox.inherited_environment(given) == sandbox.inherited_environment(
        {k: v for k, v in given.items() if k not in inherited}
    )
    assert env["DLCOURSE_QUICK"] == "1" and env["HOME"] == str(scratch.home)


@pytest.mark.slow
def test_no_secret_of_the_grader_reaches_a_grading_kernel(tmp_path, monkeypatch):
    """A submission that dumps os.environ and /proc/self/environ (its own and its parent's, as
    far as it can see them) prints no secret the grading process holds."""
    for key, value in SECRETS.items():
        monkeypatch.setenv(key, value)
    nb = notebook(
        "import os\nprint(dict(os.environ))",
        "print(open('/proc/self/environ', 'rb').read())",
        "import pathlib\n"
        "for p in pathlib.Path('/proc').glob('[0-9]*/environ'):\n"
        "    try:\n        print(p, p.read_bytes())\n    except OSError as e:\n        print(p, e)",
    )
    printed = printed_cells(run_sandboxed(nb, tmp_path))
    assert "HOME" in printed and "PATH" in printed  # the dump did run
    leaked = [key for key, value in SECRETS.items() if value in printed or key in printed]
    assert not leaked, leaked


@pytest.mark.slow
def test_a_kernel_has_a_private_writable_tmp_and_home(tmp_path):
    """An answer that saves to /tmp or HOME (np.save, a checkpoint, matplotlib's cache) keeps
    its exercise: both are writable by the kernel's own user; /tmp is a tmpfs of its own,
    owned by that user and size-limited, so it neither fills the machine nor is shared."""
    nb = notebook(
        "import os, numpy as np\n"
        "np.save('/tmp/answer.npy', np.arange(3))\n"
        "print('tmp', np.load('/tmp/answer.npy').sum(), os.stat('/tmp').st_uid == os.getuid())\n"
        "open(os.path.expanduser('~/note.txt'), 'w').write('x')\n"
        "print('home', open(os.path.expanduser('~/note.txt')).read())",
        "import tempfile\nwith tempfile.NamedTemporaryFile() as f:\n    print('tempfile', f.name)",
        "open('/tmp/big', 'wb').write(b'x' * (3 * 2**20))",
    )
    executed = run_sandboxed(nb, tmp_path, timeout=60, limits={"tmp_mb": 2})
    text = printed_cells(executed)
    assert "tmp 3 True" in text and "home x" in text, executed.cells[0].outputs
    assert "tempfile /tmp/" in text, executed.cells[1].outputs
    assert error_names(executed.cells[2]) == ["OSError"], executed.cells[2].outputs  # full
    assert not list(Path("/tmp").glob("answer.npy"))  # never the grader's own /tmp


# Run as an ordinary user: fills every place it can write, after making the directory of its
# sockets (on the machine's disk) writable again. Capped at 64 MB a place.
NON_ROOT_HOG = """import errno, os
ipc = os.environ["JUPYTER_RUNTIME_DIR"]
try:
    os.chmod(ipc, 0o700)
    chmod = "done"
except OSError as err:
    chmod = errno.errorcode.get(err.errno, str(err.errno))
wrote = {}
for name, where in [("ipc", ipc), ("cwd", os.getcwd()), ("home", os.path.expanduser("~")),
                    ("tmp", "/tmp")]:
    total, stop = 0, "cap"
    try:
        while total < 64:
            with open(os.path.join(where, f"fill-{total}.bin"), "wb") as f:
                f.write(b"x" * 2**20)
            total += 1
    except OSError as err:
        stop = errno.errorcode.get(err.errno, str(err.errno))
    wrote[name] = (total, stop)
print("HOG", chmod, wrote)
"""
HONEST = (
    "import numpy as np\nnp.save('/tmp/a.npy', np.arange(4))\nopen('b.txt', 'w').write('2')\n"
    "print('HONEST', int(np.load('/tmp/a.npy').sum()) * int(open('b.txt').read()))"
)
AS_ORDINARY_USER = """import json, sys
import nbformat
from dlcourse.grader.execute import SandboxedExecute
from dlcourse.notebooks import KERNELSPEC
nb = nbformat.v4.new_notebook(metadata={"kernelspec": dict(KERNELSPEC)})
nb.cells = [nbformat.v4.new_code_cell(sys.argv[1])]
resources = {"metadata": {"path": sys.argv[2]}, "nbgrader": {"assignment": "demo"}}
limits = {"tmp_mb": 8, "work_mb": 4}
done, _ = SandboxedExecute(timeout=120, limits=limits).preprocess(nb, resources)
print(json.dumps([o for c in done.cells for o in c.outputs]))
"""


@pytest.mark.slow
@pytest.mark.skipif(os.geteuid() != 0, reason="maps root to an ordinary user")
def test_a_non_root_graders_kernel_cannot_fill_the_disk(tmp_path):
    """The hub's grader account grades as an ordinary user, and its kernels run as that same
    user (here: root mapped to uid 1000 in a user namespace of its own, with no privilege
    outside it). A kernel that makes its socket directory writable again and fills every
    place it can write stops at its size-limited tmpfs mounts; the socket directory on the
    disk is gone from its view. An honest kernel graded beside it runs as alone."""
    as_user = ["unshare", "--user", "--map-user=1000", "--map-group=1000"]
    runs = {}
    for name, code in {"hog": NON_ROOT_HOG, "honest": HONEST}.items():
        folder = tmp_path / name
        folder.mkdir()
        runs[name] = subprocess.Popen(
            [*as_user, sys.executable, "-c", AS_ORDINARY_USER, code, str(folder)],
            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
        )  # fmt: skip
    out = {}
    for name, run in runs.items():
        stdout, stderr = run.communicate(timeout=300)
        assert run.returncode == 0, stderr[-3000:]
        out[name] = "".join(o.get("text", "") for o in json.loads(stdout.splitlines()[-1]))
    assert out["honest"] == "HONEST 12\n", out["honest"]
    assert out["hog"].startswith("HOG "), out["hog"]
    wrote = ast.literal_eval(out["hog"].split(" ", 2)[2])
    caps = {"ipc": 8, "cwd": 4, "home": 4, "tmp": 8}
    for place, (mb, stop) in wrote.items():
        assert stop in {"ENOSPC", "ENOENT", "EACCES", "EROFS"} and mb <= caps[place], wrote
