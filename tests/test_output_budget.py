"""Every byte a kernel sends counts against the output budgets, whatever its message type.

One small ws01_tensors class, graded by the driver (`python -m dlcourse autograde`) and by the
formgrader's Autograde and Generate Feedback buttons (their HTTP API on a running JupyterLab):
`flooder` floods six answer cells (below, a few seconds of flood in all) and `bystander`
hands in the reference answers. The floods:

- a `clear_output(wait=True)` animation (cleared frames give their bytes back);
- one display id shown hundreds of times, then updated with a large payload (each update
  rewrites every output with that id);
- errors shown over and over (as `showtraceback` does, long tracebacks), then a huge uncaught
  one;
- widget comms with large state;
- messages sent on the kernel's own socket: a huge stream name, display metadata and
  transient, a text execution count, an unknown message type, a huge execute_result;
- an execute reply forged at once, then 5 s of tiny prints: thousands of messages still
  arriving after the reply (nbgrader's Execute gave up after 4 s and the grader called the
  cell a crash).

The floods are in answer cells, which score nothing: every test keeps its points, the
autograded notebook and each of its cells stay within the configured budgets, a note says
outputs were cut, nothing says the kernel crashed, the grader's processes stay small (their
own peak resident memory, read from /proc, never the kernels'), and the bystander scores as
if alone.
"""

from __future__ import annotations

import json
import subprocess
import sys
import threading
from pathlib import Path

import nbformat
import pytest
from helpers import REPO, generated_course, submit
from servers import get, running_lab

from dlcourse.grader import cells
from dlcourse.grader.course import Course
from dlcourse.grader.execute import OUTPUT_REMOVED
from dlcourse.grader.runner import tool_env

pytestmark = pytest.mark.slow
WORKSHEET = "ws01_tensors"
KB = 1024
# Small budgets, so that small floods overrun them (the defaults are 2048/4096/16384).
OUTPUT_KB, CELL_KB, NOTEBOOK_KB = 256, 512, 2048
CONFIG = f"""
c.SandboxedExecute.max_output_kb = {OUTPUT_KB}
c.SandboxedExecute.max_cell_kb = {CELL_KB}
c.SandboxedExecute.max_notebook_kb = {NOTEBOOK_KB}
"""
# What a cell may hold past its budget: the grader's note and a few one-line errors.
CELL_SLACK = 4 * KB
GRADER_MB = 400  # peak resident memory of any grading process (the kernels excluded)
FLOODER = "flooder"

SEND = (
    "ip = get_ipython()\n"
    "dh = ip.displayhook\n"
    "send = lambda kind, content: dh.session.send(dh.pub_socket, kind, content, dh.parent_header)\n"
)
FLOODS = {
    "ex_to_image_batch": (
        "from IPython.display import clear_output, display\n"
        "for i in range(20):\n"
        "    clear_output(wait=True)\n"
        "    display({'text/plain': f'frame {i} ' + 'c' * 100_000}, raw=True)\n"
    ),
    "ex_normalize_images": (
        "from IPython.display import display, update_display\n"
        "for _ in range(300):\n"
        "    display({'text/plain': 'd'}, raw=True, display_id='same')\n"
        "for _ in range(3):\n"
        "    update_display({'text/plain': 'u' * 200_000}, raw=True, display_id='same')\n"
    ),
    "ex_center_crop": (
        "ip = get_ipython()\n"
        "for _ in range(10):\n"
        "    ip._showtraceback(ValueError, 'v' * 100_000, ['t' * 5_000] * 60)\n"
        "raise ValueError('x' * 1_000_000)\n"
    ),
    "ex_dense": (
        "from ipykernel.comm import Comm\n"
        "state = {'_model_module': '@jupyter-widgets/controls', "
        "'_model_name': 'IntSliderModel'}\n"
        "big = state | {'w': 'w' * 100_000}\n"
        "comms = [Comm(target_name='jupyter.widget', data={'state': big}) for _ in range(10)]\n"
        "output = {'_model_module': '@jupyter-widgets/output', '_model_name': 'OutputModel'}\n"
        "out = Comm(target_name='jupyter.widget', data={'state': output})\n"
        "out.send({'method': 'update', 'state': {'outputs': [{'text': 'o' * 50_000}] * 10}})\n"
    ),
    "ex_graph_ops": SEND
    + (
        "for _ in range(5):\n"
        "    send('stream', {'name': 'n' * 200_000, 'text': 'x'})\n"
        "    send('display_data', {'data': {'text/plain': 'm'}, "
        "'metadata': {'m': 'm' * 200_000}, 'transient': {'t': 't' * 200_000}})\n"
        "    send('execute_result', {'execution_count': 'c' * 200_000, "
        "'data': {'text/plain': 'r'}, 'metadata': {}})\n"
        "    send('x' * 200_000, {'y': 'y' * 200_000})\n"
        "    send('execute_result', {'execution_count': 1, "
        "'data': {'text/plain': 'r' * 200_000}, 'metadata': {}})\n"
    ),
    "ex_row_norms": (
        "import time\n"
        "k = get_ipython().kernel\n"
        "reply = {'status': 'ok', 'execution_count': 1, 'user_expressions': {}, 'payload': []}\n"
        "k.session.send(k.shell_stream, 'execute_reply', reply, k.get_parent('shell'), "
        "ident=k._parent_ident['shell'])\n"
        "end = time.monotonic() + 5\n"
        "while time.monotonic() < end:\n"
        "    print(7, end='', flush=True)\n"
        "    time.sleep(0.001)\n"
    ),
}


def peak_rss_mb(pid: int) -> float:
    """A process's own peak resident memory (VmHWM), 0 once it is gone."""
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) / KB
    except OSError:
        pass
    return 0.0


class GraderMemory:
    """The highest peak resident memory of `pid` and of its descendants that run the
    course's grading code (`python -m dlcourse...`: the driver's per-student children and its
    nbgrader commands), sampled while they run. Kernels are the students' own, limited by the
    sandbox, and are not counted."""

    def __init__(self, pid: int) -> None:
        import psutil

        self.root = psutil.Process(pid)
        self.peaks: dict[str, float] = {}
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._sample, daemon=True)

    def __enter__(self) -> GraderMemory:
        self._thread.start()
        return self

    def __exit__(self, *exc) -> None:
        self._stop.set()
        self._thread.join()

    def _sample(self) -> None:
        import psutil

        while not self._stop.wait(0.05):
            try:
                processes = [self.root, *self.root.children(recursive=True)]
            except psutil.NoSuchProcess:
                return
            for process in processes:
                try:
                    argv = process.cmdline()
                except psutil.Error:
                    continue
                if process is self.root or argv[1:2] == ["-m"] and argv[2].startswith("dlcourse"):
                    name = " ".join(argv[2:4]) if process is not self.root else "root"
                    peak = peak_rss_mb(process.pid)
                    self.peaks[name] = max(self.peaks.get(name, 0.0), peak)

    @property
    def highest(self) -> tuple[str, float]:
        return max(self.peaks.items(), key=lambda kv: kv[1])


@pytest.fixture(scope="module")
def flooded(tmp_path_factory):
    root = tmp_path_factory.mktemp("budget")
    course = generated_course(root / "course", [WORKSHEET], extra_config=CONFIG)
    (name, release_nb), (source_nb,) = (
        next(iter(course.release_notebooks(WORKSHEET).items())),
        course.source_notebooks(WORKSHEET).values(),
    )
    reference = cells.reference_answers(source_nb)
    submit(course, WORKSHEET, "bystander", {name: cells.answered(release_nb, reference)})
    answers = {k: reference[k] + "\n" + FLOODS.get(k, "") for k in reference}
    submit(course, WORKSHEET, FLOODER, {name: cells.answered(release_nb, answers)})
    command = [sys.executable, "-m", "dlcourse", "autograde", WORKSHEET, "--course"]
    proc = subprocess.Popen(
        [*command, str(course.root), "--workers", "2"],
        env=tool_env(),
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    with GraderMemory(proc.pid) as memory:
        said, _ = proc.communicate(timeout=900)
    assert proc.returncode == 0, said[-4000:]
    return course, name, cells.grade_cells(source_nb), memory


def assert_within_budget(course: Course, name: str, student: str) -> nbformat.NotebookNode:
    path = course.autograded(student, WORKSHEET) / f"{name}.ipynb"
    nb = nbformat.read(path, as_version=4)
    sources = sum(len(cell.source) for cell in nb.cells) + 64 * KB  # and the metadata
    size = path.stat().st_size
    assert size <= NOTEBOOK_KB * KB + sources, f"{student}: {size / 2**20:.1f} MB notebook"
    assert len(json.dumps(nb.metadata)) < 16 * KB, f"{student}: metadata kept (widget state?)"
    for cell in nb.cells:
        kept = len(json.dumps(cell.get("outputs", [])))
        assert kept <= CELL_KB * KB + CELL_SLACK, (
            f"{student}: {kept} bytes in {cells.grade_id(cell)}"
        )
    html = course.feedback(student, WORKSHEET) / f"{name}.html"
    assert html.stat().st_size <= 2 * NOTEBOOK_KB * KB + sources + 2**20, f"{student}: feedback"
    return nb


def outputs_text(nb: nbformat.NotebookNode, grade_id: str) -> str:
    (cell,) = (c for c in nb.cells if cells.grade_id(c) == grade_id)
    return json.dumps(cell.outputs)


def test_the_driver_keeps_every_flood_within_budget_and_every_test_its_points(flooded):
    course, name, full, _ = flooded
    assert course.scores(WORKSHEET, FLOODER) == pytest.approx(full)
    nb = assert_within_budget(course, name, FLOODER)
    assert OUTPUT_REMOVED in json.dumps([c.get("outputs", []) for c in nb.cells])
    notes = course.notes(WORKSHEET, FLOODER).read_text()
    assert "too large to keep" in notes and "crashed" not in notes, notes
    assert course.scores(WORKSHEET, "bystander") == pytest.approx(full)
    assert not course.notes(WORKSHEET, "bystander").is_file() or "removed" not in (
        course.notes(WORKSHEET, "bystander").read_text()
    )
    assert_within_budget(course, name, "bystander")


def test_what_is_kept_of_each_flood(flooded):
    course, name, *_ = flooded
    nb = nbformat.read(course.autograded(FLOODER, WORKSHEET) / f"{name}.ipynb", 4)
    # the animation's last frame is shown: cleared frames gave their bytes back
    assert "frame 19 " in outputs_text(nb, "ex_to_image_batch")
    # an update of hundreds of outputs is counted for each of them: too large, dropped
    assert '"u' not in outputs_text(nb, "ex_normalize_images")
    assert '"ename": "ValueError"' in outputs_text(nb, "ex_center_crop")  # one line at least
    # the tiny prints still arriving after the forged reply were read (up to the budget)
    assert outputs_text(nb, "ex_row_norms").count("7") > 100


def test_the_grader_stays_small(flooded):
    *_, memory = flooded
    assert any(name.startswith("dlcourse.grader.child") for name in memory.peaks), memory.peaks
    name, peak = memory.highest
    assert peak < GRADER_MB, f"{name} reached {peak:.0f} MB: {memory.peaks}"


def test_the_formgrader_buttons_keep_the_budget(flooded, tmp_path):
    course, name, full, _ = flooded
    student = FLOODER
    env = tool_env(
        JUPYTER_CONFIG_DIR=str(tmp_path / "config"),
        JUPYTER_DATA_DIR=str(tmp_path / "data"),
        JUPYTER_RUNTIME_DIR=str(tmp_path / "runtime"),
        IPYTHONDIR=str(tmp_path / "ipython"),
    )
    with running_lab(
        course.root, course.root, env, tmp_path / "jupyter.log", REPO / "artifacts" / "budget"
    ) as (base, token):
        with GraderMemory(lab_pid(base)) as memory:
            for path in (
                f"/formgrader/api/submission/{WORKSHEET}/{student}/autograde",
                f"/formgrader/api/assignment/{WORKSHEET}/{student}/generate_feedback",
            ):
                result = json.loads(get(base + path, token, timeout=600, method="POST"))
                assert result["success"], result.get("error", "")[-3000:]
    assert course.scores(WORKSHEET, student) == pytest.approx(full)
    assert_within_budget(course, name, student)
    name_, peak = memory.highest
    assert peak < GRADER_MB + 200, f"{name_} reached {peak:.0f} MB: {memory.peaks}"


def lab_pid(base: str) -> int:
    """The JupyterLab server answering at `base` (formgrader grades in its process)."""
    import psutil

    port = f"--ServerApp.port={base.rsplit(':', 1)[1]}"
    for process in psutil.process_iter(["cmdline"]):
        if port in (process.info["cmdline"] or []):
            return process.pid
    raise AssertionError(f"no server with {port}")
