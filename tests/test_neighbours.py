"""Kernels graded side by side: a submission's processes, however many and however they hide
(each in a session of its own), spend only its own kernel's CPU and memory budget, and die
with it. Real kernels in the real sandbox, each in its real cgroup (v1 or v2, whichever the
machine has)."""

from __future__ import annotations

import asyncio
import os
import subprocess
import sys
import time
from pathlib import Path

import pytest

from dlcourse.grader import cgroups, sandbox
from dlcourse.notebooks import KERNELSPEC

pytestmark = pytest.mark.skipif(
    not sandbox.protections().budget,
    reason=f"no cgroups here: {cgroups.available()[1]} (the sandbox warns; README says so)",
)

# 30 spinners, each forked into a session of its own (nice and autogroups do not help).
HOG = """
import os
for _ in range(30):
    if os.fork() == 0:
        os.setsid()
        while True:
            pass
print('spinning')
"""
# A fixed CPU-bound loop; the kernel times it itself (no start-up or messaging in the time).
HONEST = """
import time
start = time.perf_counter()
total = 0
for i in range(6_000_000):
    total += i * i
print('seconds', time.perf_counter() - start)
"""
# Four processes of 400 MB each: each within the 1 GB limit per process, 1.6 GB together.
CHILD = "import time; hold = b'x' * (400 * 2**20); print('held', flush=True); time.sleep(4)"
MEMORY_HOG = f"""
import subprocess, sys
children = [subprocess.Popen([sys.executable, '-c', {CHILD!r}]) for _ in range(4)]
print('exit codes', [child.wait() for child in children])
"""


class Kernel:
    """A grading kernel as nbgrader starts it: SandboxedKernelManager with given limits."""

    def __init__(self, folder: Path, **limits):
        self.manager = sandbox.SandboxedKernelManager(kernel_name=KERNELSPEC["name"])
        self.manager.limits = sandbox.Limits(**limits)
        self.folder = folder

    async def __aenter__(self) -> Kernel:
        self.folder.mkdir(exist_ok=True)
        await self.manager.start_kernel(cwd=str(self.folder))
        self.client = self.manager.client()
        self.client.start_channels()
        await self.client.wait_for_ready(timeout=60)
        return self

    async def __aexit__(self, *exc) -> None:
        self.client.stop_channels()
        await self.manager.shutdown_kernel(now=True)

    @property
    def group(self) -> cgroups.KernelGroup:
        return self.manager._budget_group

    async def run(self, code: str, timeout: float = 60) -> str:
        printed: list[str] = []

        def keep(msg) -> None:
            if msg["msg_type"] == "stream":
                printed.append(msg["content"]["text"])

        await self.client.execute_interactive(code, timeout=timeout, output_hook=keep)
        return "".join(printed)


def seconds(printed: str) -> float:
    return float(printed.split("seconds")[1].split()[0])


def running(pids) -> list[int]:
    """Those of `pids` still alive (a zombie only waits for its parent to read its status)."""
    alive = []
    for pid in map(int, pids):
        try:
            state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
        except OSError:
            continue
        if state != "Z":
            alive.append(pid)
    return alive


def cpu_seconds(pids: set[int]) -> float:
    """User and system CPU time of these processes, from /proc (any cgroup version)."""
    total = 0
    for pid in pids:
        try:
            fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        total += int(fields[11]) + int(fields[12])
    return total / os.sysconf("SC_CLK_TCK")


@pytest.mark.slow
def test_a_cpu_hog_of_many_sessions_does_not_starve_its_neighbour(tmp_path):
    async def scenario() -> tuple[float, float, float]:
        async with Kernel(tmp_path / "honest") as honest:
            await honest.run(HONEST)  # warm up
            alone = min([seconds(await honest.run(HONEST)) for _ in range(2)])
            async with Kernel(tmp_path / "hog") as hog:
                assert "spinning" in await hog.run(HOG)
                await asyncio.sleep(1)
                pids, start = hog.group.pids(), time.monotonic()
                before = cpu_seconds(pids)
                beside = seconds(await honest.run(HONEST))
                hog_share = (cpu_seconds(pids) - before) / (time.monotonic() - start)
                return alone, beside, hog_share

    alone, beside, hog_share = asyncio.run(scenario())
    report = f"alone {alone:.2f} s, beside the hog {beside:.2f} s, hog {hog_share:.2f} CPUs"
    assert len(os.sched_getaffinity(0)) >= 2, report  # one core each
    assert beside < 2.5 * alone, report
    assert hog_share < 1.3, report  # its quota of one CPU holds (2 CPUs without it)


@pytest.mark.slow
def test_a_kernel_and_all_its_children_share_one_memory_budget(tmp_path):
    async def scenario() -> tuple[str, int | None, str]:
        async with Kernel(tmp_path / "k", memory_mb=1024) as kernel:
            printed = await kernel.run(MEMORY_HOG)
            peak = kernel.group.peak_memory()
            after = await kernel.run("print('still', 6 * 7)")
            return printed, peak, after

    printed, peak, after = asyncio.run(scenario())
    codes = eval(printed.split("exit codes")[1])  # a list of four ints, printed by the kernel
    assert -9 in codes, printed  # the out-of-memory killer stopped at least one child
    assert peak is not None and 400 * 2**20 < peak <= 1024 * 2**20, (peak, printed)
    assert "still 42" in after  # the kernel itself goes on: only its children were killed


@pytest.mark.slow
def test_a_stopped_kernel_leaves_no_process_and_no_cgroup(tmp_path):
    escape = (
        "import os, subprocess\n"
        "p = subprocess.Popen(['sleep', '600'], start_new_session=True)\n"
        "print('left', p.pid)"
    )

    async def scenario() -> tuple[cgroups.KernelGroup, set[int]]:
        async with Kernel(tmp_path / "k") as kernel:
            assert "left" in await kernel.run(escape)
            group, pids = kernel.group, kernel.group.pids()
            assert len(pids) >= 3, pids  # the sandbox, the kernel, the sleeper
        return group, pids

    group, pids = asyncio.run(scenario())
    assert not running(pids), pids
    assert not [d for d in group.dirs if d.exists()], group.dirs


def test_cgroups_of_a_killed_grader_are_removed_on_the_next_run():
    """A grader killed mid-run leaves its kernel cgroups (and what runs in them); the next
    grader's first probe kills what is left and removes them."""
    hierarchy, why = cgroups.available()
    assert hierarchy is not None, why
    grader = subprocess.Popen(
        [
            sys.executable,
            "-c",
            "import subprocess, sys, time\n"
            "from dlcourse.grader import cgroups\n"
            "group = cgroups.available()[0].create(cgroups.Budget(1.0, 2**28, 16))\n"
            "subprocess.Popen(group.join_command(['sleep', '600']))\n"
            "time.sleep(1)\n"
            "print(group.name, *group.pids(), flush=True)\n"
            "time.sleep(600)\n",
        ],
        stdout=subprocess.PIPE,
        text=True,
    )
    name, *pids = grader.stdout.readline().split()
    grader.kill()
    grader.wait()
    group = hierarchy.group(name)
    assert all(d.exists() for d in group.dirs) and pids, (name, pids)

    cgroups.available.cache_clear()
    try:
        assert cgroups.available()[0] == hierarchy
    finally:
        cgroups.available.cache_clear()
    assert not [d for d in group.dirs if d.exists()], group.dirs
    assert not running(pids), pids


def test_the_sandbox_says_whether_kernels_have_a_budget():
    with_budget = sandbox.Protections(True, True, True, True, True, "bubblewrap", cgroup="v2")
    assert "CPU and memory budget per kernel: cgroup v2" in with_budget.summary()
    assert with_budget.warning() is None
    without = sandbox.Protections(True, True, True, True, True, "bubblewrap")
    assert "off: CPU and memory budget per kernel: none" in without.summary()
    assert "OFF" not in without.summary()  # still isolated: grading goes on
    assert "can slow its neighbours down" in (without.warning() or "")
