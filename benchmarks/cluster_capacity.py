"""Grading capacity: N submissions on this machine (thread pool, SQLite) vs on a two-worker
Dask cluster (PostgreSQL gradebook), in one run, and a capacity table from the measurements.

Usage:

    .venv/bin/python benchmarks/cluster_capacity.py [worksheet] [--students N] [--workers W]

The class: N ordinary submissions (the reference, a blank, half answered, the realistic
mistake, repeated), collected once. Both runs grade the same submissions with the course's
driver (`driver.autograde_all`: staging, sandboxed grading child, verdicts), after the
reference run (timed once, cached; a shared filesystem shares it with the workers):

- local: `W` concurrent child processes (thread pool), gradebook SQLite;
- cluster: `dask scheduler` + `W` x `dask worker --nthreads 1` on 127.0.0.1, gradebook on a
  throwaway PostgreSQL server (both from tests/servers.py, stopped by PID at the end).

Measured per submission: wall time per worker slot, CPU seconds (grading child + kernel,
from the OS's accounting of reaped children) and peak resident memory of the largest process
(the kernel). The capacity table extrapolates: a class of S on K one-thread workers takes
about ceil(S / K) x (seconds per submission per slot) + the reference run.
"""

from __future__ import annotations

import argparse
import math
import os
import platform
import resource
import shutil
import signal
import sys
import tempfile
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
REPO = HERE.parent
sys.path[:0] = [str(HERE), str(REPO / "tests")]

from autograde_parallel import collect_class  # noqa: E402
from servers import DaskCluster, Postgres  # noqa: E402

from dlcourse import settings  # noqa: E402
from dlcourse.demo.pipeline import new_course  # noqa: E402
from dlcourse.grader import driver, gradebook, reference  # noqa: E402
from dlcourse.grader.cluster import DaskExecutor  # noqa: E402
from dlcourse.grader.course import Course  # noqa: E402
from dlcourse.grader.runner import nbgrader, tool_env  # noqa: E402


def children_usage() -> tuple[float, float]:
    """(CPU seconds of all reaped descendants, their largest peak RSS in MB)."""
    usage = resource.getrusage(resource.RUSAGE_CHILDREN)
    return usage.ru_utime + usage.ru_stime, usage.ru_maxrss / 1024


def worker_children_cpu(cluster: DaskCluster) -> float:
    import psutil

    total = 0.0
    for proc in cluster.workers:
        try:
            times = psutil.Process(proc.pid).cpu_times()
            total += times.children_user + times.children_system
        except psutil.NoSuchProcess:
            pass
    return total


def load() -> str:
    one, five, fifteen = os.getloadavg()
    return f"{one:.1f}/{five:.1f}/{fifteen:.1f}"


def main() -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("worksheet", nargs="?", default="ws01_tensors")
    parser.add_argument("--students", type=int, default=100)
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument(
        "--batch",
        type=int,
        default=10,
        help="students per round: each round grades its students locally, then on the "
        "cluster, so both see the same machine load; a table is printed after every round",
    )
    args = parser.parse_args()
    # `kill PID` still stops the servers this run started (the `with` blocks below).
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))
    ws, n, k = args.worksheet, args.students, args.workers
    os.environ["PATH"] = tool_env()["PATH"]
    os.environ.pop(settings.DB_URL, None)
    work = Path(tempfile.mkdtemp(prefix="bench-cluster-"))
    try:
        local = new_course(work / "local", REPO, [ws])
        students = collect_class(local, ws, n)
        start = time.perf_counter()
        reference.ensure(local, ws)
        canary = time.perf_counter() - start
        print(f"reference run: {canary:.0f} s; load {load()}", flush=True)
        release = local.release_notebooks(ws)
        gradebook.create(local)

        env = {key: v for key, v in tool_env().items() if key != settings.DB_URL}
        with Postgres() as pg, DaskCluster(workers=k, env=env) as cluster:
            url = pg.create_database("bench")
            remote_root = work / "cluster"
            shutil.copytree(
                local.root,
                remote_root,
                ignore=shutil.ignore_patterns("gradebook.db", "autograded", "staged", "logs"),
            )
            os.environ[settings.DB_URL] = url
            remote = Course(remote_root)
            nbgrader(remote.root, "generate_assignment", ws, "--force")  # into PostgreSQL
            gradebook.create(remote)
            os.environ.pop(settings.DB_URL, None)
            executor = DaskExecutor(cluster.address, cluster.client_certs)
            totals = {"local": Totals(), "cluster": Totals()}
            for first in range(0, n, args.batch):
                batch = students[first : first + args.batch]
                # Local: the driver's default executor (thread pool of k grading processes).
                cpu0, _ = children_usage()
                start = time.perf_counter()
                done = list(driver._local(local, ws, batch, release, k))
                cpu1, rss = children_usage()
                totals["local"].add(done, time.perf_counter() - start, cpu1 - cpu0, rss)
                # Cluster: one Dask task per student; the gradebook on PostgreSQL.
                os.environ[settings.DB_URL] = url
                cpu0 = worker_children_cpu(cluster)
                start = time.perf_counter()
                done = list(executor.grade(remote, ws, batch, release, progress=lambda _: None))
                seconds = time.perf_counter() - start
                totals["cluster"].add(done, seconds, worker_children_cpu(cluster) - cpu0, None)
                os.environ.pop(settings.DB_URL, None)
                report(ws, n, k, canary, totals)
            ok = gradebook.submissions(remote, ws)
            print(
                f"PostgreSQL gradebook: {len(ok)} students, "
                f"{sorted({v['submissions'] for v in ok.values()})} submission(s) each"
            )
    finally:
        shutil.rmtree(work, ignore_errors=True)
    return 0


class Totals:
    def __init__(self) -> None:
        self.graded = self.ok = 0
        self.wall = self.cpu = 0.0
        self.rss = 0.0

    def add(self, outcomes, wall: float, cpu: float, rss: float | None) -> None:
        self.graded += len(outcomes)
        self.ok += sum(o.ok for o in outcomes)
        self.wall += wall
        self.cpu += cpu
        self.rss = max(self.rss, rss or 0.0)


def report(ws: str, n: int, k: int, canary: float, totals: dict[str, Totals]) -> None:
    done = totals["local"].graded
    print(
        f"\n{time.strftime('%H:%M:%S')} Machine: {platform.machine()}, {os.cpu_count()} CPUs "
        f"(shared; load average 1/5/15 min now: {load()}); {ws}, {done} of {n} submissions "
        f"graded in each mode so far, {k} worker slots; reference run {canary:.0f} s "
        f"(once, cached)\n"
    )
    print(
        "| run | graded ok | wall time | wall per submission per slot | CPU per submission "
        "| peak resident (largest process) |"
    )
    print("|---|---|---|---|---|---|")
    labels = {
        "local": f"local: thread pool of {k}, SQLite",
        "cluster": f"Dask: scheduler + {k} workers × 1 thread, PostgreSQL",
    }
    for mode, t in totals.items():
        rss = f"{t.rss:,.0f} MB" if t.rss else "(not measured on workers)"
        print(
            f"| {labels[mode]} | {t.ok}/{t.graded} | {t.wall:.0f} s "
            f"| {t.wall * k / t.graded:.1f} s | {t.cpu / t.graded:.1f} s | {rss} |"
        )
    cl = totals["cluster"]
    per_slot = cl.wall * k / cl.graded
    cpu = max(t.cpu / t.graded for t in totals.values())
    print(
        f"\nCapacity (one-thread workers, one core and 2 GB each; {per_slot:.1f} s per "
        f"submission per slot as measured on the cluster here, {cpu:.1f} CPU s per submission):\n"
    )
    print(
        "| class size | workers | expected wall time (rate measured here) "
        "| on idle cores (CPU-bound) |"
    )
    print("|---|---|---|---|")
    for size in (100, 300, 1000):
        for workers in (2, 8, 32):
            rounds = math.ceil(size / workers)
            print(
                f"| {size} | {workers} | {_fmt(rounds * per_slot + canary)} "
                f"| {_fmt(rounds * cpu + canary)} |"
            )
    sys.stdout.flush()


def _quiet(n: int):
    done = [0]

    def progress(line: str) -> None:
        if line.startswith("  [") and "/" in line:
            done[0] += 1
            if done[0] % 10 == 0 or done[0] == n:
                print(f"    {done[0]}/{n} ({load()})", flush=True)

    return progress


def _fmt(seconds: float) -> str:
    return f"{seconds / 60:.0f} min" if seconds >= 120 else f"{seconds:.0f} s"


if __name__ == "__main__":
    sys.exit(main())
