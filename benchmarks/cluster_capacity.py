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
from dlcourse.grader import reference  # noqa: E402
from dlcourse.grader.cluster import DaskExecutor  # noqa: E402
from dlcourse.grader.course import Course  # noqa: E402
from dlcourse.grader.driver import autograde_all  # noqa: E402
from dlcourse.grader.runner import tool_env  # noqa: E402


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
    args = parser.parse_args()
    ws, n, k = args.worksheet, args.students, args.workers
    os.environ["PATH"] = tool_env()["PATH"]
    os.environ.pop(settings.DB_URL, None)
    work = Path(tempfile.mkdtemp(prefix="bench-cluster-"))
    rows = []
    try:
        local = new_course(work / "local", REPO, [ws])
        students = collect_class(local, ws, n)
        start = time.perf_counter()
        reference.ensure(local, ws)
        canary = time.perf_counter() - start
        print(f"reference run: {canary:.0f} s; load {load()}", flush=True)

        cpu0, _ = children_usage()
        start = time.perf_counter()
        release = local.release_notebooks(ws)
        outcomes = autograde_all(local, ws, students, release, workers=k, progress=_quiet(n))
        wall = time.perf_counter() - start
        cpu1, rss = children_usage()
        ok = sum(o.ok for o in outcomes)
        rows.append(("local: thread pool, SQLite", wall, (cpu1 - cpu0) / n, rss, ok, load()))
        print(f"local: {wall:.0f} s, {ok}/{n} graded; load {load()}", flush=True)

        env = {key: v for key, v in tool_env().items() if key != settings.DB_URL}
        with Postgres() as pg, DaskCluster(workers=k, env=env) as cluster:
            url = pg.create_database("bench")
            os.environ[settings.DB_URL] = url
            remote_root = work / "cluster"
            shutil.copytree(
                local.root,
                remote_root,
                ignore=shutil.ignore_patterns(
                    "gradebook.db", "autograded", "staged", "feedback", "logs", "notes", "backups"
                ),
            )
            remote = Course(remote_root)
            from dlcourse.grader.runner import nbgrader

            nbgrader(remote.root, "generate_assignment", ws, "--force")  # into PostgreSQL
            cpu0 = worker_children_cpu(cluster)
            start = time.perf_counter()
            outcomes = autograde_all(
                remote,
                ws,
                students,
                remote.release_notebooks(ws),
                progress=_quiet(n),
                executor=DaskExecutor(cluster.address),
            )
            wall = time.perf_counter() - start
            cpu = (worker_children_cpu(cluster) - cpu0) / n
            ok = sum(o.ok for o in outcomes)
            label = f"Dask: scheduler + {k} workers (1 thread), PostgreSQL"
            rows.append((label, wall, cpu, None, ok, load()))
            print(f"cluster: {wall:.0f} s, {ok}/{n} graded; load {load()}", flush=True)
            os.environ.pop(settings.DB_URL, None)
    finally:
        shutil.rmtree(work, ignore_errors=True)

    print(
        f"\nMachine: {platform.machine()}, {os.cpu_count()} CPUs (shared; load average "
        f"1/5/15 min at the end: {load()}); {ws}, {n} submissions, {k} worker slots; "
        f"reference run {canary:.0f} s (once, cached)\n"
    )
    print(
        "| run | graded | wall time | wall per submission per slot | CPU per submission "
        "| peak resident (largest process) | load at end |"
    )
    print("|---|---|---|---|---|---|---|")
    for label, wall, cpu, rss, ok, at_end in rows:
        rss_text = f"{rss:,.0f} MB" if rss else "(not measured on workers)"
        print(
            f"| {label} | {ok}/{n} | {wall:.0f} s | {wall * k / n:.1f} s | {cpu:.1f} s "
            f"| {rss_text} | {at_end} |"
        )
    per_slot = rows[-1][1] * k / n
    cpu = max(r[2] for r in rows)
    print(
        f"\nCapacity (one-thread workers, one core and 2 GB each; {per_slot:.1f} s per "
        f"submission per slot as measured on the cluster here, {cpu:.1f} CPU s per submission, "
        f"so about {per_slot / max(cpu, 0.1):.1f}x slower than an idle core would be):\n"
    )
    print("| class size | workers | expected wall time (measured rate) | on idle cores |")
    print("|---|---|---|---|")
    for size in (100, 300, 1000):
        for workers in (2, 8, 32):
            rounds = math.ceil(size / workers)
            here = rounds * per_slot + canary
            idle = rounds * cpu + canary
            print(f"| {size} | {workers} | {_fmt(here)} | {_fmt(idle)} |")
    return 0


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
