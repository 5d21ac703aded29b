"""Autograding on a real Dask cluster on loopback: `dask scheduler` plus two `dask worker`
processes (one thread each), the gradebook on a real PostgreSQL server (tests/servers.py;
all started here and stopped by PID).

- the cluster grades a class with exactly the scores the local path (thread pool, SQLite)
  gives the same submissions;
- a worker SIGKILLed mid-run (its whole process group, like a lost machine): its grading
  child dies with it, the scheduler grades its student elsewhere, and the gradebook ends
  with exactly one submission and one set of grades per student, the same scores;
- the class includes two hostile students (answers that try to send the hidden tests back,
  tests/leak_answers.py; markup and script in every place a page shows, tests/payloads.py):
  the cluster gives them the same scores, notes and test-cell verdicts as the local path,
  which tests/test_feedback_leaks.py and tests/test_hostile.py hold to no leak and no script;
- all of it over TLS with README's certificates (`python -m dlcourse cluster certs`): a
  client without a certificate, over plain TCP, or with a certificate from another CA
  reaches neither the scheduler nor a worker and runs nothing there; the course's command
  refuses a `tcp://` scheduler before grading anyone; every socket listens on loopback.
"""

from __future__ import annotations

import os
import shutil
import ssl
import stat
import subprocess
import sys
import threading
import time
from pathlib import Path

import nbformat
import pytest
from helpers import generated_course, submit, written_points
from leak_answers import HOSTILE, LOSES
from payloads import hostile_submission
from servers import DaskCluster, Postgres, collect_class
from test_pipeline import expected_scores

from dlcourse import settings
from dlcourse.grader import cells, cluster_tls, gradebook
from dlcourse.grader.cluster import ClusterUnavailable, DaskExecutor
from dlcourse.grader.course import Course
from dlcourse.grader.driver import autograde_all
from dlcourse.grader.runner import tool_env

WORKSHEET = "ws01_tensors"


@pytest.fixture(scope="module")
def servers():
    # Workers get no DLCOURSE_DB_URL on purpose: each task carries the instructor's URL.
    env = {k: v for k, v in tool_env().items() if k != settings.DB_URL}
    with Postgres() as pg, DaskCluster(workers=2, env=env) as cluster:
        yield pg, cluster


@pytest.fixture(scope="module")
def other_certs(tmp_path_factory) -> Path:
    """A second, unrelated `cluster certs` set: another CA."""
    folder = tmp_path_factory.mktemp("other") / "certs"
    cluster_tls.make(folder)
    return folder


HOSTILE_STUDENTS = ("mallory", "payloads")


def hand_in_hostile(course: Course) -> list[str]:
    """The hostile students' submissions; their expected scores are `hostile_scores`."""
    (name, release_nb), (source_nb,) = (
        next(iter(course.release_notebooks(WORKSHEET).items())),
        course.source_notebooks(WORKSHEET).values(),
    )
    answers = cells.reference_answers(source_nb)
    last = cells.solution_ids(source_nb)[-1]
    submit(course, WORKSHEET, "mallory", {name: cells.answered(release_nb, answers | HOSTILE)})
    submit(course, WORKSHEET, "payloads", {name: hostile_submission(release_nb, answers, last)})
    return list(HOSTILE_STUDENTS)


def hostile_scores(source_nb) -> dict[str, dict[str, float]]:
    full = cells.grade_cells(source_nb)
    return {"mallory": {k: LOSES.get(k, v) for k, v in full.items()}, "payloads": full}


def verdicts_of(course: Course, student: str) -> list[list[dict]]:
    """The outputs of every test cell in a student's autograded notebook (the grader's own
    verdict text: nothing the kernel produced while a test ran)."""
    (path,) = course.autograded(student, WORKSHEET).glob("*.ipynb")
    nb = nbformat.read(path, as_version=4)
    return [c.outputs for c in nb.cells if (cells.grade_id(c) or "").startswith("test_")]


@pytest.fixture(scope="module")
def local_class(tmp_path_factory):
    """The same class graded by the local path: thread pool, SQLite gradebook."""
    saved = os.environ.pop(settings.DB_URL, None)
    try:
        course = generated_course(tmp_path_factory.mktemp("local") / "course", [WORKSHEET])
        assert course.db_url.startswith("sqlite:///")
        students = collect_class(course, WORKSHEET) + hand_in_hostile(course)
        release = course.release_notebooks(WORKSHEET)
        outcomes = autograde_all(course, WORKSHEET, students, release, workers=2)
        scores = {s: course.scores(WORKSHEET, s) for s in students}
    finally:
        if saved is not None:
            os.environ[settings.DB_URL] = saved
    return course, outcomes, scores


@pytest.fixture
def pg_course(servers, local_class, tmp_path, monkeypatch, request):
    pg, _ = servers
    url = pg.create_database(f"gradebook_{request.node.name[:40].lower()}")
    monkeypatch.setenv(settings.DB_URL, url)
    monkeypatch.setenv("PATH", tool_env()["PATH"])
    course = generated_course(tmp_path / "course", [WORKSHEET])
    collect_class(course, WORKSHEET)
    hand_in_hostile(course)
    # The reference results are a cache keyed by the master notebooks and the grader's code:
    # the local run's are this course's too (a shared filesystem shares them the same way).
    shutil.copytree(local_class[0].expected(WORKSHEET).parent, course.expected(WORKSHEET).parent)
    return course


def _graded_cells(source_nb) -> int:
    """Grades per submission: the autograded cells and the written answers."""
    return len(cells.grade_cells(source_nb)) + len(cells.written_cells(source_nb))


def _check_gradebook(course: Course, local_scores: dict, n_cells: int) -> None:
    assert course.db_url.startswith("postgresql")
    assert not (course.root / "gradebook.db").exists()
    fresh = Course(course.root)
    got = {s: fresh.scores(WORKSHEET, s) for s in local_scores}
    assert got == local_scores
    assert gradebook.submissions(course, WORKSHEET) == {
        s: {"submissions": 1, "grades": n_cells} for s in local_scores
    }


def _all_gone(procs, timeout: float) -> bool:
    import psutil

    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        alive = []
        for proc in procs:
            try:
                if proc.status() != psutil.STATUS_ZOMBIE:  # a zombie waits for init to reap it
                    alive.append(proc)
            except psutil.NoSuchProcess:
                pass
        if not alive:
            return True
        time.sleep(0.5)
    return False


def test_a_sqlite_gradebook_is_refused_on_a_cluster(tmp_path, monkeypatch, other_certs):
    monkeypatch.delenv(settings.DB_URL, raising=False)
    course = generated_course(tmp_path / "course", [])
    with pytest.raises(ClusterUnavailable, match="SQLite"):
        DaskExecutor("tls://127.0.0.1:1", other_certs / "client").check(course)


def test_only_tls_with_a_client_certificate_is_accepted(monkeypatch, other_certs):
    monkeypatch.delenv(settings.CLUSTER_CERTS, raising=False)
    client = other_certs / "client"
    for address in ("tcp://127.0.0.1:8786", "127.0.0.1:8786", "ws://127.0.0.1:8786"):
        with pytest.raises(ClusterUnavailable, match="only over tls:// with certificates"):
            DaskExecutor(address, client).security()
    with pytest.raises(
        ClusterUnavailable, match=f"--certs DIR/client or set {settings.CLUSTER_CERTS}"
    ):
        DaskExecutor("tls://127.0.0.1:8786").security()
    with pytest.raises(ClusterUnavailable, match="missing .*key.pem"):
        DaskExecutor("tls://127.0.0.1:8786", other_certs).security()  # not the client folder
    # A key that grading kernels could read could leave in a student's output.
    with pytest.raises(ClusterUnavailable, match="/etc, which grading kernels can read"):
        DaskExecutor("tls://127.0.0.1:8786", Path("/etc/dlcourse-cluster/client")).security()
    monkeypatch.setenv(settings.CLUSTER_CERTS, str(client))
    security = DaskExecutor("tls://127.0.0.1:8786").security()
    assert security.require_encryption and security.tls_client_cert == str(client / "cert.pem")


def test_the_certificates_command(tmp_path, capsys):
    folder = tmp_path / "certs"
    command = [sys.executable, "-m", "dlcourse", "cluster", "certs", str(folder)]
    done = subprocess.run(command, capture_output=True, text=True, check=False)
    assert done.returncode == 0, done.stdout + done.stderr
    made = sorted(p.relative_to(folder).as_posix() for p in folder.rglob("*"))
    assert made == [
        f"{role}{name}"
        for role in sorted(cluster_tls.ROLES)
        for name in ("", "/ca.pem", "/cert.pem", "/key.pem")
    ]  # no CA key anywhere: nothing can issue another certificate
    for path in [folder, *folder.rglob("*")]:
        mode = stat.S_IMODE(path.stat().st_mode)
        assert mode == (0o700 if path.is_dir() else 0o600), (path, oct(mode))
    assert len({(folder / role / "ca.pem").read_bytes() for role in cluster_tls.ROLES}) == 1
    ca = ssl.create_default_context(cafile=folder / "worker" / "ca.pem")
    assert len(ca.get_ca_certs()) == 1
    for role in cluster_tls.ROLES:  # each role's certificate and key belong together
        ssl.create_default_context().load_cert_chain(
            folder / role / "cert.pem", folder / role / "key.pem"
        )
    before = {p: p.read_bytes() for p in folder.rglob("*.pem")}
    assert cluster_tls.command(str(folder)) == 2  # the command's own code, in-process
    assert "Refusing to make certificates" in capsys.readouterr().out
    assert {p: p.read_bytes() for p in folder.rglob("*.pem")} == before
    # Not where grading kernels can read them (the sandbox mounts Python's prefix).
    exposed = Path(sys.prefix) / "dlcourse-cluster-test"
    try:
        assert cluster_tls.command(str(exposed)) == 2
        assert "which grading kernels can read" in capsys.readouterr().out
        assert not exposed.exists()
    finally:
        shutil.rmtree(exposed, ignore_errors=True)


def test_a_worker_that_cannot_see_the_course_says_so(tmp_path, monkeypatch):
    from dlcourse.grader.cluster import grade_on_worker

    url = "postgresql+psycopg2://grader@127.0.0.1:1/none"
    monkeypatch.setenv(settings.DB_URL, "")  # restored after the test
    outcome = grade_on_worker(str(tmp_path / "elsewhere"), WORKSHEET, "ada", url)
    assert not outcome.ok and "is not there" in outcome.notes[0]
    course = generated_course(tmp_path / "course", [])  # no reference results cached
    outcome = grade_on_worker(str(course.root), WORKSHEET, "ada", url)
    assert not outcome.ok and "no current reference results" in outcome.notes[0]
    assert os.environ[settings.DB_URL] == url  # the worker's grading child gets the task's URL


def test_no_scheduler_is_a_clear_refusal(other_certs):
    with pytest.raises(ClusterUnavailable, match="no Dask scheduler answered"):
        DaskExecutor("tls://127.0.0.1:1", other_certs / "client", timeout=2)._client()


def _touching():
    """What an intruder sends: a function that proves it ran, as whoever runs the worker
    (nested, so it travels by value: the cluster cannot import this test module)."""

    def touch(path: str) -> str:
        Path(path).write_text("ran")
        return path

    return touch


class _Intruder:
    """A Dask client identity with its own SSL context (None: plain TCP): it trusts any
    server, so only the scheduler's or worker's own check can stop it."""

    def __init__(self, name: str, context: ssl.SSLContext | None) -> None:
        self.name, self.context = name, context

    def args(self) -> dict:
        return {"ssl_context": self.context, "require_encryption": False, "extra_conn_args": {}}

    def security(self):
        from distributed.security import Security

        intruder = self

        class Own(Security):
            __slots__ = ()

            def get_connection_args(self, role):
                return intruder.args()

        return Own(require_encryption=False)


def _intruders(other_certs: Path) -> list[_Intruder]:
    def trusting() -> ssl.SSLContext:
        context = ssl.create_default_context(ssl.Purpose.SERVER_AUTH)
        context.check_hostname, context.verify_mode = False, ssl.CERT_NONE
        return context

    foreign = trusting()
    foreign.load_cert_chain(other_certs / "client" / "cert.pem", other_certs / "client" / "key.pem")
    return [
        _Intruder("plain-tcp", None),
        _Intruder("no-certificate", trusting()),
        _Intruder("other-ca", foreign),
    ]


def _run_on_scheduler(address: str, security, marker: Path) -> None:
    from distributed import Client

    with Client(address, security=security, timeout=5, set_as_default=False) as client:
        client.submit(_touching(), str(marker), pure=False).result(timeout=30)


def _run_on_worker(address: str, connection_args: dict, marker: Path) -> None:
    """Straight to a worker, past the scheduler: the worker's `run` handler."""
    import asyncio

    from distributed.core import rpc
    from distributed.protocol.pickle import dumps

    async def run() -> None:
        worker = rpc(address, connection_args=connection_args, timeout=5)
        try:
            reply = await worker.run(function=dumps(_touching()), args=dumps((str(marker),)))
            assert reply["status"] == "OK", reply
        finally:
            await worker.close_rpc()

    asyncio.run(run())


def _listening(pid: int) -> set[str]:
    import psutil

    return {c.laddr.ip for c in psutil.Process(pid).net_connections("inet") if c.status == "LISTEN"}


@pytest.mark.slow
def test_only_the_course_certificates_reach_the_cluster(servers, other_certs, tmp_path):
    from distributed import Client

    _, cluster = servers
    with Client(cluster.address, security=cluster.security(), timeout=30) as client:
        workers = list(client.scheduler_info()["workers"])
    assert cluster.address.startswith("tls://") and len(workers) == 2
    assert all(w.startswith("tls://127.0.0.1:") for w in workers), workers
    for proc in [cluster.scheduler, *cluster.workers]:  # the HTTP diagnostics servers too
        assert _listening(proc.pid) == {"127.0.0.1"}, cluster.logs()

    for intruder in _intruders(other_certs):
        marker = tmp_path / f"{intruder.name}-scheduler"
        address = cluster.address
        if intruder.context is None:
            address = address.replace("tls://", "tcp://")
        with pytest.raises((OSError, TimeoutError)):
            _run_on_scheduler(address, intruder.security(), marker)
        for i, worker in enumerate(workers):
            if intruder.context is None:
                worker = worker.replace("tls://", "tcp://")
            with pytest.raises((OSError, TimeoutError)):
                _run_on_worker(worker, intruder.args(), tmp_path / f"{intruder.name}-worker{i}")
    # The same two routes with the course's client certificate do run code: the refusals
    # above are the certificates' doing, not a broken route.
    genuine = cluster.security()
    _run_on_scheduler(cluster.address, genuine, tmp_path / "course-scheduler")
    _run_on_worker(workers[0], genuine.get_connection_args("client"), tmp_path / "course-worker0")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["course-scheduler", "course-worker0"]


@pytest.mark.slow
def test_the_cluster_grades_exactly_like_the_local_path(servers, local_class, pg_course):
    _, cluster = servers
    _, local_outcomes, local_scores = local_class
    source = next(iter(pg_course.source_notebooks(WORKSHEET).values()))
    expected = expected_scores(source) | hostile_scores(source)
    for student, scores in local_scores.items():  # the local path is right to begin with
        assert scores == pytest.approx(expected[student]), student

    lines: list[str] = []
    release = pg_course.release_notebooks(WORKSHEET)
    outcomes = autograde_all(
        pg_course,
        WORKSHEET,
        list(local_scores),
        release,
        progress=lines.append,
        executor=DaskExecutor(cluster.address, cluster.client_certs),
    )
    assert [(o.student, o.ok, o.notes) for o in outcomes] == [
        (o.student, o.ok, o.notes) for o in local_outcomes
    ]
    assert any("2 worker(s)" in line for line in lines), lines
    assert sum(f"/{len(local_scores)} {WORKSHEET}" in line for line in lines) == len(local_scores)
    _check_gradebook(pg_course, local_scores, _graded_cells(source))
    # Every student was graded on a worker: staged/, autograded/ and logs on the shared folder.
    for student in local_scores:
        assert pg_course.log(WORKSHEET, student).is_file()
        assert list(pg_course.autograded(student, WORKSHEET).glob("*.ipynb"))
    # The hostile students' test cells say exactly what the local path's say.
    for student in HOSTILE_STUDENTS:
        local = verdicts_of(local_class[0], student)
        assert local and verdicts_of(pg_course, student) == local, student


@pytest.mark.slow
def test_a_worker_killed_mid_run_loses_and_double_counts_nothing(servers, local_class, pg_course):
    import psutil
    from distributed import Client

    _, cluster = servers
    _, _, local_scores = local_class
    victim = cluster.workers[0]
    killed: dict = {}

    def kill_mid_task() -> None:
        """Once worker-0 has been grading a student for a few seconds, SIGKILL it."""
        with Client(cluster.address, security=cluster.security(), timeout=30) as client:
            address = next(
                a for a, w in client.scheduler_info()["workers"].items() if w["name"] == "worker-0"
            )
            deadline = time.monotonic() + 300
            busy_since = None
            while time.monotonic() < deadline:
                keys = client.processing(workers=[address]).get(address, ())
                children = psutil.Process(victim.pid).children()
                if keys and children:
                    busy_since = busy_since or time.monotonic()
                    if time.monotonic() - busy_since > 3:
                        killed["keys"] = list(keys)
                        killed["children"] = children
                        cluster.kill_worker(0)
                        return
                else:
                    busy_since = None
                time.sleep(0.2)

    killer = threading.Thread(target=kill_mid_task, daemon=True)
    killer.start()
    try:
        release = pg_course.release_notebooks(WORKSHEET)
        outcomes = autograde_all(
            pg_course,
            WORKSHEET,
            list(local_scores),
            release,
            progress=lambda line: None,
            executor=DaskExecutor(cluster.address, cluster.client_certs),
        )
    finally:
        killer.join(timeout=60)
        # Put a second worker back for whatever runs next in this module.
        cluster.add_worker("worker-0b")
        cluster.workers[0] = cluster.workers.pop()

    assert killed.get("keys"), "worker-0 was never killed mid-task:\n" + cluster.logs()
    # Its grading child did not outlive it (no orphan keeps writing into the gradebook).
    assert _all_gone(killed["children"], timeout=30)
    assert sorted(o.student for o in outcomes) == sorted(local_scores)
    assert [o.student for o in outcomes if not o.ok] == []
    source = next(iter(pg_course.source_notebooks(WORKSHEET).values()))
    _check_gradebook(pg_course, local_scores, _graded_cells(source))


@pytest.mark.slow
def test_the_command_line_grades_on_the_cluster(servers, tmp_path):
    import csv

    pg, cluster = servers
    env = tool_env(**{settings.DB_URL: pg.create_database("gradebook_cli")})
    os.environ[settings.DB_URL] = env[settings.DB_URL]
    try:
        course = generated_course(tmp_path / "course", [WORKSHEET])
        collect_class(course, WORKSHEET, ("ada", "ben"))
    finally:
        os.environ.pop(settings.DB_URL)
    command = [sys.executable, "-m", "dlcourse", "autograde", WORKSHEET]
    command += ["--course", str(course.root), "--certs", str(cluster.client_certs)]

    # A plain tcp:// scheduler (the same one's port: it only speaks TLS) is refused before
    # anyone is graded or anything is written.
    plain_tcp = command + ["--scheduler", cluster.address.replace("tls://", "tcp://")]
    done = subprocess.run(plain_tcp, env=env, capture_output=True, text=True, check=False)
    assert done.returncode == 3, done.stdout + done.stderr
    assert "refusing the scheduler address 'tcp://127.0.0.1:" in done.stdout, done.stdout
    assert not course.grades_csv.exists() and not course.log(WORKSHEET, "ada").exists()
    assert not list(course.backups.glob("*"))

    command += ["--scheduler", cluster.address]
    done = subprocess.run(command, env=env, capture_output=True, text=True, check=False)
    assert done.returncode == 0, done.stdout + done.stderr
    assert "grading on the Dask cluster at" in done.stdout
    assert "2/2 ws01_tensors" in done.stdout  # live progress, one line per student
    rows = {r["student_id"]: r for r in csv.DictReader(course.grades_csv.open())}
    written = written_points(course, WORKSHEET)  # graded by hand: 0 until then
    assert float(rows["ada"]["score"]) == float(rows["ada"]["max_score"]) - written > 0
    assert float(rows["ben"]["score"]) == 0
    assert list(course.backups.glob("gradebook-*.dump"))  # pg_dump before the run

    # A grader gives ada's written answer its points; grading again on the cluster keeps them.
    from nbgrader.api import Gradebook

    with Gradebook(env[settings.DB_URL], course.coursedir.course_id) as gb:
        for grade in gb.find_submission(WORKSHEET, "ada").notebooks[0].grades:
            if grade.cell.cell_type == "markdown":
                grade.manual_score = grade.max_score
        gb.db.commit()
    done = subprocess.run(command, env=env, capture_output=True, text=True, check=False)
    assert done.returncode == 0, done.stdout + done.stderr
    rows = {r["student_id"]: r for r in csv.DictReader(course.grades_csv.open())}
    assert float(rows["ada"]["score"]) == float(rows["ada"]["max_score"]) > 0
    assert not (course.root / "gradebook.db").exists()

    # Without a database server, --scheduler refuses before grading anyone. (The client
    # certificate comes from the setting this time: the SQLite check comes after it.)
    plain = {k: v for k, v in env.items() if k != settings.DB_URL}
    plain[settings.CLUSTER_CERTS] = str(cluster.client_certs)
    without_flag = [a for a in command if a not in ("--certs", str(cluster.client_certs))]
    done = subprocess.run(without_flag, env=plain, capture_output=True, text=True, check=False)
    assert done.returncode == 3 and "SQLite" in done.stdout, done.stdout + done.stderr
