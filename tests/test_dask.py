"""Autograding on a real Dask cluster on loopback: `dask scheduler` plus two `dask worker`
processes (one thread each), the gradebook on a real PostgreSQL server (tests/servers.py;
all started here and stopped by PID).

- the cluster grades a class with exactly the scores the local path (thread pool, SQLite)
  gives the same submissions;
- a worker SIGKILLed mid-run (its whole process group, like a lost machine): its grading
  child dies with it, the scheduler grades its student elsewhere, and the gradebook ends
  with exactly one submission and one set of grades per student, the same scores.
"""

from __future__ import annotations

import os
import shutil
import threading
import time

import pytest
from helpers import generated_course
from servers import DaskCluster, Postgres, collect_class
from test_pipeline import expected_scores

from dlcourse import settings
from dlcourse.grader import gradebook
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
def local_class(tmp_path_factory):
    """The same class graded by the local path: thread pool, SQLite gradebook."""
    saved = os.environ.pop(settings.DB_URL, None)
    try:
        course = generated_course(tmp_path_factory.mktemp("local") / "course", [WORKSHEET])
        assert course.db_url.startswith("sqlite:///")
        students = collect_class(course, WORKSHEET)
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
    # The reference results are a cache keyed by the master notebooks and the grader's code:
    # the local run's are this course's too (a shared filesystem shares them the same way).
    shutil.copytree(local_class[0].expected(WORKSHEET).parent, course.expected(WORKSHEET).parent)
    return course


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


def test_a_sqlite_gradebook_is_refused_on_a_cluster(tmp_path, monkeypatch):
    monkeypatch.delenv(settings.DB_URL, raising=False)
    course = generated_course(tmp_path / "course", [])
    with pytest.raises(ClusterUnavailable, match="SQLite"):
        DaskExecutor("tcp://127.0.0.1:1").check(course)


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


def test_no_scheduler_is_a_clear_refusal():
    with pytest.raises(ClusterUnavailable, match="no Dask scheduler answered"):
        DaskExecutor("tcp://127.0.0.1:1", timeout=2)._client()


@pytest.mark.slow
def test_the_cluster_grades_exactly_like_the_local_path(servers, local_class, pg_course):
    _, cluster = servers
    _, local_outcomes, local_scores = local_class
    source = next(iter(pg_course.source_notebooks(WORKSHEET).values()))
    expected = expected_scores(source)
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
        executor=DaskExecutor(cluster.address),
    )
    assert [(o.student, o.ok, o.notes) for o in outcomes] == [
        (o.student, o.ok, o.notes) for o in local_outcomes
    ]
    assert any("2 worker(s)" in line for line in lines), lines
    assert sum(f"/{len(local_scores)} {WORKSHEET}" in line for line in lines) == len(local_scores)
    _check_gradebook(pg_course, local_scores, len(expected["ada"]))
    # Every student was graded on a worker: staged/, autograded/ and logs on the shared folder.
    for student in local_scores:
        assert pg_course.log(WORKSHEET, student).is_file()
        assert list(pg_course.autograded(student, WORKSHEET).glob("*.ipynb"))


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
        with Client(cluster.address, timeout=30) as client:
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
            executor=DaskExecutor(cluster.address),
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
    _check_gradebook(pg_course, local_scores, len(expected_scores(source)["ada"]))


@pytest.mark.slow
def test_the_command_line_grades_on_the_cluster(servers, tmp_path):
    import csv
    import subprocess
    import sys

    pg, cluster = servers
    env = tool_env(**{settings.DB_URL: pg.create_database("gradebook_cli")})
    os.environ[settings.DB_URL] = env[settings.DB_URL]
    try:
        course = generated_course(tmp_path / "course", [WORKSHEET])
        collect_class(course, WORKSHEET, ("ada", "ben"))
    finally:
        os.environ.pop(settings.DB_URL)
    command = [sys.executable, "-m", "dlcourse", "autograde", WORKSHEET]
    command += ["--course", str(course.root), "--scheduler", cluster.address]
    done = subprocess.run(command, env=env, capture_output=True, text=True, check=False)
    assert done.returncode == 0, done.stdout + done.stderr
    assert "grading on the Dask cluster at" in done.stdout
    assert "2/2 ws01_tensors" in done.stdout  # live progress, one line per student
    rows = {r["student_id"]: r for r in csv.DictReader(course.grades_csv.open())}
    assert float(rows["ada"]["score"]) == float(rows["ada"]["max_score"]) > 0
    assert float(rows["ben"]["score"]) == 0
    assert list(course.backups.glob("gradebook-*.dump"))  # pg_dump before the run
    assert not (course.root / "gradebook.db").exists()

    # Without a database server, --scheduler refuses before grading anyone.
    plain = {k: v for k, v in env.items() if k != settings.DB_URL}
    done = subprocess.run(command, env=plain, capture_output=True, text=True, check=False)
    assert done.returncode == 3 and "SQLite" in done.stdout, done.stdout + done.stderr
