"""The gradebook on a real PostgreSQL server (Debian's, started and stopped here).

initdb into a temporary directory, a free 127.0.0.1 port, the server stopped by PID at the
end whatever happened (tests/servers.py). The gradebook is created through nbgrader's own
code and migrations, a small class is graded into it by the local driver (two concurrent
writers, no retry loop), the grades are read back, and a pg_dump backup restores it.
"""

from __future__ import annotations

import pytest
from helpers import generated_course
from servers import Postgres, collect_class
from test_pipeline import expected_scores

from dlcourse import settings
from dlcourse.grader import cells, gradebook
from dlcourse.grader.course import Course
from dlcourse.grader.driver import autograde_all
from dlcourse.grader.runner import tool_env

WORKSHEET = "ws01_tensors"


@pytest.fixture(scope="module")
def postgres():
    with Postgres() as server:
        yield server


def test_the_embedded_default_is_still_sqlite(tmp_path, monkeypatch):
    monkeypatch.delenv(settings.DB_URL, raising=False)
    course = generated_course(tmp_path / "course", [])
    assert course.db_url == f"sqlite:///{course.root / 'gradebook.db'}"
    assert gradebook.backend(course.db_url) == "sqlite" and not gradebook.is_server(course.db_url)
    assert gradebook.backend("postgresql+psycopg2://u@h/db") == "postgresql"


def test_the_gradebook_url_never_reaches_a_grading_kernel(tmp_path):
    from dlcourse.grader.sandbox import Scratch, kernel_environment

    scratch = Scratch(tmp_path, tmp_path / "work", tmp_path / "home", tmp_path / "ipc")
    given = {settings.DB_URL: "postgresql://grader:secret@db/dlcourse", "DLCOURSE_QUICK": "1"}
    env = kernel_environment(scratch, given)
    assert settings.DB_URL not in env and "secret" not in str(env)
    assert env["DLCOURSE_QUICK"] == "1"


def test_server_is_stopped_by_pid(tmp_path):
    import os

    server = Postgres().start()
    pid, folder = server.pid, server.dir
    server.stop()
    with pytest.raises(ProcessLookupError):
        os.kill(pid, 0)
    assert not folder.exists()


@pytest.mark.slow
def test_a_class_graded_into_postgresql_reads_back_and_restores(postgres, tmp_path, monkeypatch):
    import sqlalchemy
    from nbgrader.api import get_alembic_version

    url = postgres.create_database("gradebook_pg")
    monkeypatch.setenv(settings.DB_URL, url)
    monkeypatch.setenv("PATH", tool_env()["PATH"])  # nbgrader runs `alembic` from PATH
    course = generated_course(tmp_path / "course", [WORKSHEET])  # generate_assignment into PG
    assert course.db_url == url

    gradebook.create(course)  # nbgrader's Gradebook + `nbgrader db upgrade`: idempotent
    engine = sqlalchemy.create_engine(url)
    with engine.connect() as conn:
        version = conn.execute(sqlalchemy.text("SELECT version_num FROM alembic_version")).all()
    engine.dispose()
    assert [row[0] for row in version] == [get_alembic_version()]

    students = collect_class(course, WORKSHEET)
    release = course.release_notebooks(WORKSHEET)
    outcomes = autograde_all(course, WORKSHEET, students, release, workers=2)
    assert [o.student for o in outcomes if not o.ok] == []
    assert not (course.root / "gradebook.db").exists()  # nothing went to a SQLite file

    source = next(iter(course.source_notebooks(WORKSHEET).values()))
    expected = expected_scores(source)
    scores = {s: Course(course.root).scores(WORKSHEET, s) for s in students}
    for student in students:
        assert scores[student] == pytest.approx(expected[student]), student
    n_cells = len(cells.grade_cells(source)) + len(cells.written_cells(source))  # a grade each
    assert gradebook.submissions(course, WORKSHEET) == {
        s: {"submissions": 1, "grades": n_cells} for s in students
    }
    # The run backed the gradebook up first (pg_dump, instructor-only).
    dumps = sorted(course.backups.glob("gradebook-*.dump"))
    assert len(dumps) == 1 and oct(dumps[0].stat().st_mode & 0o777) == "0o600"

    # Backup now, damage the gradebook, restore: every grade is back.
    dump = gradebook.backup(course)
    with course.gradebook() as gb:
        gb.remove_submission(WORKSHEET, "ada")
        grade = gb.find_submission(WORKSHEET, "cleo").notebooks[0].grades[0]
        grade.manual_score = 0.25
        gb.db.commit()
    assert "ada" not in gradebook.submissions(course, WORKSHEET)
    gradebook.restore(course, dump)
    assert {s: course.scores(WORKSHEET, s) for s in students} == scores
    assert gradebook.submissions(course, WORKSHEET)["ada"] == {"submissions": 1, "grades": n_cells}
