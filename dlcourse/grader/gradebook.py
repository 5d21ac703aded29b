"""The gradebook behind a course: SQLite in the course folder (the embedded default) or a
database server (PostgreSQL), named by one SQLAlchemy URL.

The URL is nbgrader's own setting, `CourseDirectory.db_url`; the course's
`nbgrader_config.py` takes it from `DLCOURSE_DB_URL` (default
`sqlite:///<course>/gradebook.db`), e.g.

    DLCOURSE_DB_URL=postgresql+psycopg2://grader@dbhost:5432/dlcourse

Here: creating the gradebook once, before any grading (nbgrader's own code: its `Gradebook`
creates the tables and stamps nbgrader's alembic migrations at head; `nbgrader db upgrade`
then applies any migration a newer nbgrader brings), and backing it up before every run and
restoring it: a file copy for SQLite, `pg_dump`/`pg_restore` (custom format) for PostgreSQL.

With PostgreSQL, concurrent writers (the local thread pool, or Dask workers on many
machines) need no retry loop: rows are locked, never the whole database, and the driver's
"database is locked" retry only ever triggers for SQLite.
"""

from __future__ import annotations

import glob
import os
import shutil
import subprocess
from datetime import UTC, datetime
from pathlib import Path

from dlcourse.grader.course import Course
from dlcourse.grader.runner import nbgrader


class BackupFailed(RuntimeError):
    pass


RESTORE_LOCK_TIMEOUT = 60  # seconds pg_restore waits for a table lock


def sqlite_path(course: Course) -> Path:
    """The SQLite gradebook's file, as the course's URL names it."""
    from sqlalchemy.engine import make_url

    return Path(make_url(course.db_url).database or course.root / "gradebook.db")


def backend(url: str) -> str:
    """'sqlite', 'postgresql', or another SQLAlchemy dialect name."""
    return url.split(":", 1)[0].split("+", 1)[0].lower()


def is_server(url: str) -> bool:
    return backend(url) != "sqlite"


def create(course: Course) -> None:
    """Create the gradebook's tables once, up front, not in every concurrent worker.

    SQLite: exactly as before (`nbgrader db student list` creates the file on first use).
    A server: the database must exist (created by its administrator); nbgrader's `Gradebook`
    creates the tables and stamps the migrations, `nbgrader db upgrade` brings an older
    gradebook up to this nbgrader's schema.
    """
    if not is_server(course.db_url):
        nbgrader(course.root, "db", "student", "list", check=False)
        return
    # In nbgrader's own processes (it runs `alembic` from PATH, which tool_env() sets).
    nbgrader(course.root, "db", "student", "list")
    nbgrader(course.root, "db", "upgrade")


def _libpq_env(url: str) -> dict[str, str]:
    """The libpq variables (PGHOST, ...) for pg_dump/pg_restore from an SQLAlchemy URL, so no
    password ever appears on a command line."""
    from sqlalchemy.engine import make_url

    parsed = make_url(url)
    env = dict(os.environ)
    values = {
        "PGHOST": parsed.query.get("host") or parsed.host,
        "PGPORT": str(parsed.port) if parsed.port else None,
        "PGUSER": parsed.username,
        "PGPASSWORD": parsed.password,
        "PGDATABASE": parsed.database,
    }
    env.update({key: str(value) for key, value in values.items() if value})
    return env


def pg_tool(name: str) -> str:
    """pg_dump / pg_restore: PATH first, else Debian's versioned folder (newest)."""
    found = shutil.which(name) or next(
        iter(sorted(glob.glob(f"/usr/lib/postgresql/*/bin/{name}"), reverse=True)), None
    )
    if not found:
        raise BackupFailed(
            f"{name} not found: install PostgreSQL's client tools (Debian: postgresql-client) "
            "on the machine that runs `python -m dlcourse autograde`"
        )
    return found


def backup(course: Course) -> Path | None:
    """A copy of the gradebook in grading/backups/ (instructor-only), or None when there is no
    gradebook yet. SQLite: the file; PostgreSQL: `pg_dump --format=custom`."""
    url = course.db_url
    stamp = datetime.now(UTC).strftime("%Y%m%dT%H%M%S%fZ")
    if not is_server(url):
        db = sqlite_path(course)
        if not db.exists():
            return None
        course.backups.mkdir(parents=True, exist_ok=True, mode=0o700)
        target = course.backups / f"gradebook-{stamp}.db"
        shutil.copy2(db, target)
        target.chmod(0o600)
        return target
    if backend(url) != "postgresql":
        return None  # another server: its administrator's backups apply
    course.backups.mkdir(parents=True, exist_ok=True, mode=0o700)
    target = course.backups / f"gradebook-{stamp}.dump"
    with target.open("wb") as out:
        target.chmod(0o600)
        done = subprocess.run(
            [pg_tool("pg_dump"), "--format=custom", "--no-owner", "--no-privileges"],
            env=_libpq_env(url),
            stdout=out,
            stderr=subprocess.PIPE,
            check=False,
        )
    if done.returncode != 0:
        target.unlink(missing_ok=True)
        raise BackupFailed(f"pg_dump failed: {done.stderr.decode(errors='replace')[-2000:]}")
    return target


def restore(course: Course, dump: Path) -> None:
    """Put a backup back: the gradebook becomes exactly what it was when `dump` was taken.

    SQLite: the file is copied back. PostgreSQL: `pg_restore --clean --if-exists` in one
    transaction into the database the course's URL names (nothing changes if it fails)."""
    url = course.db_url
    if not is_server(url):
        shutil.copy2(dump, sqlite_path(course))
        return
    # An idle formgrader may hold a lock on a table: wait a minute at most, then say so.
    env = _libpq_env(url) | {"PGOPTIONS": f"-c lock_timeout={RESTORE_LOCK_TIMEOUT}s"}
    try:
        done = subprocess.run(
            [pg_tool("pg_restore"), "--clean", "--if-exists", "--single-transaction"]
            + ["--no-owner", "--no-privileges", "--dbname", env["PGDATABASE"], str(dump)],
            env=env,
            capture_output=True,
            check=False,
            timeout=RESTORE_LOCK_TIMEOUT * 5,
        )
    except subprocess.TimeoutExpired as err:
        raise BackupFailed(f"pg_restore did not finish in {err.timeout} s") from err
    if done.returncode != 0:
        raise BackupFailed(f"pg_restore failed: {done.stderr.decode(errors='replace')[-2000:]}")


def submissions(course: Course, assignment: str) -> dict[str, dict[str, int]]:
    """student -> {"submissions": n, "grades": n}, counted in the database itself: after any
    run, rescheduled or not, every graded student has exactly one submission and one grade per
    graded cell."""
    import sqlalchemy

    query = sqlalchemy.text(
        """
        SELECT s.student_id,
               COUNT(DISTINCT s.id) AS submissions,
               COUNT(g.id) AS grades
        FROM submitted_assignment s
        JOIN assignment a ON a.id = s.assignment_id
        LEFT JOIN submitted_notebook n ON n.assignment_id = s.id
        LEFT JOIN grade g ON g.notebook_id = n.id
        WHERE a.name = :assignment
        GROUP BY s.student_id
        """
    )
    engine = sqlalchemy.create_engine(course.db_url)
    try:
        with engine.connect() as conn:
            rows = conn.execute(query, {"assignment": assignment}).all()
    finally:
        engine.dispose()
    return {row[0]: {"submissions": int(row[1]), "grades": int(row[2])} for row in rows}


def main(argv: list[str] | None = None) -> int:
    """`python -m dlcourse.grader.gradebook {create,backup,restore FILE} [--course DIR]`."""
    import argparse

    parser = argparse.ArgumentParser(prog="python -m dlcourse.grader.gradebook")
    parser.add_argument("action", choices=["create", "backup", "restore"])
    parser.add_argument("file", nargs="?", help="restore: the backup to put back")
    parser.add_argument("--course", help="course root (default: the nearest one from here)")
    args = parser.parse_args(argv)
    course = Course.at(args.course)
    if args.action == "create":
        create(course)
        print(f"gradebook ready: {backend(course.db_url)}")
    elif args.action == "backup":
        print(backup(course) or "no gradebook yet: nothing to back up")
    else:
        if not args.file:
            parser.error("restore needs the backup file")
        restore(course, Path(args.file))
        print(f"restored {args.file}")
    return 0


if __name__ == "__main__":
    import sys

    sys.exit(main())
