"""Autograde on a Dask distributed cluster: one task per student.

    python -m dlcourse cluster certs DIR     # once: a private CA and a certificate per role
    python -m dlcourse autograde ws01_tensors --scheduler tls://HOST:8786 --certs DIR/client

Each task runs, on whichever worker the scheduler picks, exactly what the local thread pool
runs for one student (`driver.grade_student`: staging, the sandboxed child process, the
crash locator, notes) and returns its `Outcome` (a plain dataclass: scores are in the
gradebook, notes and failures in the outcome). What the cluster needs:

- the course directory on a filesystem every worker mounts at the same path (NFS, CephFS,
  Lustre, ...): workers read `release/`, `submitted/` and the cached reference results
  (`grading/expected/`) and write `staged/`, `autograded/` and `grading/logs/` there;
- the gradebook on a database server (`DLCOURSE_DB_URL=postgresql+psycopg2://...`): the task
  carries the URL, so a worker started without the variable still writes where the
  instructor's run reads; a course whose gradebook is a SQLite file is refused on a
  cluster (one file over a network filesystem, many writers);
- workers started from the same environment (this repository's pinned stack, bubblewrap):
  every task first checks that its worker sees the course and the reference results.
- TLS with client certificates everywhere (`cluster_tls`): a task is arbitrary code run with
  the worker's rights (gradebook, course), so scheduler and workers accept only connections
  that present a certificate from the course's own CA, and the instructor's client only
  speaks `tls://` with `require_encryption=True`. A plain `tcp://` (or scheme-less) address
  is refused before anything is graded.

A worker lost mid-run: the scheduler gives its tasks to the remaining workers. The grading
child of a killed worker dies with it (PR_SET_PDEATHSIG in `driver`), nbgrader's autograde
runs with `--force` semantics (a student's submission record is replaced, never added), and
the gradebook's unique constraints allow one submission per student and assignment: a
student graded twice is counted once. `gradebook.submissions()` checks it.
"""

from __future__ import annotations

import os
import socket
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import nbformat

from dlcourse import settings
from dlcourse.grader import cluster_tls, gradebook, reference
from dlcourse.grader.course import Course
from dlcourse.grader.driver import Outcome

CONNECT_TIMEOUT = 30  # seconds to reach the scheduler
SCHEME = "tls://"  # the only protocol the course's client speaks
RETRIES = 1  # a task that raised (never a student's fault: grade_student is total) runs again


class ClusterUnavailable(RuntimeError):
    pass


def grade_on_worker(root: str, assignment: str, student: str, db_url: str) -> Outcome:
    """One student's grading on a Dask worker: the same `grade_student` as the local path."""
    from dlcourse.grader import driver

    # Every process on this worker (the grading child reads nbgrader_config.py) grades into
    # the instructor's gradebook, whatever the worker's own environment says.
    os.environ[settings.DB_URL] = db_url
    where = socket.gethostname()
    try:
        course = Course.at(root)
    except Exception as err:  # noqa: BLE001 - not shared with this worker
        return Outcome(student, False, 0.0, notes=[_not_shared(where, root, err)])
    if course.db_url != db_url:
        return Outcome(
            student,
            False,
            0.0,
            notes=[
                f"could not be graded on worker {where}: its nbgrader_config.py names the "
                f"gradebook {course.db_url!r}, not {db_url!r}"
            ],
        )
    if reference.load(course, assignment) is None:
        return Outcome(
            student,
            False,
            0.0,
            notes=[
                f"could not be graded on worker {where}: no current reference results in "
                f"{course.expected(assignment)} (is the course directory shared, and is the "
                f"worker running the same dlcourse code?)"
            ],
        )
    release = course.release_notebooks(assignment)
    return driver.grade_student(course, assignment, student, release)


def _not_shared(where: str, root: str, err: Exception) -> str:
    return (
        f"could not be graded on worker {where}: the course directory {root} is not there "
        f"({type(err).__name__}: {str(err)[:200]}); mount it at the same path on every worker"
    )


@dataclass
class DaskExecutor:
    """Runs `grade_on_worker` for every student on the cluster at `scheduler`, yielding each
    `Outcome` as it completes (live progress)."""

    scheduler: str
    certs: Path | None = None  # the client certificate folder; default DLCOURSE_CLUSTER_CERTS
    timeout: float = CONNECT_TIMEOUT
    retries: int = RETRIES

    def security(self):
        """The client's `Security` (TLS, client certificate, encryption required), or a
        `ClusterUnavailable` that says what is missing."""
        if not self.scheduler.startswith(SCHEME):
            raise ClusterUnavailable(
                f"refusing the scheduler address {self.scheduler!r}: a Dask task runs any code "
                f"with the worker's rights, so the course grades only over {SCHEME} with "
                f"certificates (`python -m dlcourse cluster certs DIR`; README: Grading "
                f"beyond one machine)"
            )
        folder = self.certs or settings.cluster_certs()
        if folder is None:
            raise ClusterUnavailable(
                f"no client certificate for {self.scheduler}: pass --certs DIR/client or set "
                f"{settings.CLUSTER_CERTS} (made by `python -m dlcourse cluster certs DIR`)"
            )
        try:
            return cluster_tls.client_security(folder)
        except cluster_tls.CertificatesRefused as err:
            raise ClusterUnavailable(str(err)) from err

    def _client(self):
        try:
            from distributed import Client
        except ImportError as err:  # pragma: no cover - part of the pinned stack
            raise ClusterUnavailable(
                "dask/distributed are not installed: make setup installs the pinned stack"
            ) from err
        security = self.security()
        try:
            return Client(
                self.scheduler, security=security, timeout=self.timeout, set_as_default=False
            )
        except (OSError, TimeoutError) as err:
            raise ClusterUnavailable(
                f"no Dask scheduler answered at {self.scheduler} within {self.timeout:.0f} s "
                f"with a certificate from the CA in {security.tls_ca_file} (is it running, with "
                f"the same `cluster certs` set?): {type(err).__name__}: {str(err)[:300]}"
            ) from err

    def check(self, course: Course) -> None:
        """Refuse before anything is graded: not TLS, no client certificate, or a gradebook
        that is a local file."""
        self.security()
        if not gradebook.is_server(course.db_url):
            raise ClusterUnavailable(
                f"the gradebook is {course.db_url}: a SQLite file cannot take writes from "
                f"many machines; set DLCOURSE_DB_URL to a PostgreSQL database "
                f"(README: Grading beyond one machine)"
            )

    def describe(self, client=None) -> str:
        if client is None:
            return f"the Dask cluster at {self.scheduler}"
        info = client.scheduler_info()
        workers = info.get("workers", {})
        threads = sum(w.get("nthreads", 0) for w in workers.values())
        return (
            f"the Dask cluster at {self.scheduler} ({len(workers)} worker(s), {threads} thread(s))"
        )

    def grade(
        self,
        course: Course,
        assignment: str,
        students: list[str],
        release: dict[str, nbformat.NotebookNode],
        progress=print,
    ) -> Iterator[Outcome]:
        from distributed import as_completed

        self.check(course)
        client = self._client()
        try:
            progress(f"  grading on {self.describe(client)}")
            futures = {
                client.submit(
                    grade_on_worker,
                    str(course.root),
                    assignment,
                    student,
                    course.db_url,
                    key=f"grade-{assignment}-{student}",
                    pure=False,
                    retries=self.retries,
                ): student
                for student in students
            }
            seen: set[str] = set()
            for future in as_completed(futures, loop=client.loop):
                student = futures[future]
                try:
                    outcome = future.result()
                except Exception as err:  # noqa: BLE001 - e.g. KilledWorker: noted, not fatal
                    outcome = Outcome(
                        student,
                        False,
                        0.0,
                        notes=[
                            f"could not be graded on the cluster: {type(err).__name__}: "
                            f"{str(err)[:300]}"
                        ],
                    )
                if student in seen:  # never happens: one key per student; never count twice
                    continue
                seen.add(student)
                yield outcome
        finally:
            client.close()
