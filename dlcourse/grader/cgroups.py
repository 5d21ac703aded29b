"""A CPU and memory budget per grading kernel, through cgroups.

The sandbox's resource limits (`prlimit`) count per process: a submission that forks
spinning processes, each in a session of its own, takes the machine from the kernel graded
beside it, and four forked children may each use the whole memory limit. A cgroup per kernel
bounds the kernel's whole process tree instead:

- **CPU**: a quota of `Limits.cpus` CPUs (`cpu.max`; v1 `cpu.cfs_quota_us`). With the
  driver's default of one worker per core, one CPU per kernel is each kernel's fair share:
  a kernel running 30 spinners gets one CPU, however many processes it forks, and the kernel
  beside it keeps the other. Weights alone would only share fairly between kernels; the quota
  also keeps a hog from taking the grader's, the hub's or the students' own servers' time.
- **memory**: `Limits.memory_mb` for all its processes together (`memory.max`, no swap
  beyond it; v1 `memory.limit_in_bytes` and `memory.memsw.limit_in_bytes`). Past it the
  kernel's out-of-memory killer picks the largest process of that kernel, nobody else's.
- **processes**: `Limits.processes` tasks for the whole tree (`pids.max`), where available.

Where: cgroup v2 if a hierarchy with the cpu and memory controllers can be handed to kernels
(the folder `DLCOURSE_CGROUP` names, else the grader's own cgroup, its parent, or the root),
else cgroup v1's cpu and memory (and pids) hierarchies, under the grader's own cgroup in
each, else none: `available()` says why, and the sandbox reports it. Kernel cgroups sit
directly in that parent, beside whatever else runs there, so each kernel weighs as much as
one ordinary process (or service) against the rest of the machine, however many kernels run;
a common folder for them all would share one weight between them, and a hog would take its
neighbour's part of it. They are named `dlcourse-kernel-<grader pid>-<its start time>-...`,
so a grader that was killed leaves nothing for long: the next one removes its cgroups (and
kills what still runs in them).

A kernel joins its cgroup before it runs anything: its command starts with a shell that
writes its own PID into the cgroup and then execs bubblewrap. When the kernel stops, every
process left in the cgroup is killed (`cgroup.kill` on v2) and the cgroup removed.
"""

from __future__ import annotations

import asyncio
import errno
import os
import re
import secrets
import shlex
import signal
import time
from collections.abc import Iterable
from dataclasses import dataclass
from functools import cache
from pathlib import Path

from dlcourse import settings

PREFIX = "dlcourse-kernel-"
PERIOD_US = 100_000
V1_CONTROLLERS = ("cpu", "memory", "pids")  # pids is optional
_NAME = re.compile(rf"^{PREFIX}(\d+)-(\d+)-[0-9a-f]+$")


@dataclass(frozen=True)
class Budget:
    cpus: float
    memory_bytes: int
    processes: int


class CgroupError(OSError):
    """A kernel's cgroup could not be made or joined."""


def _write(path: Path, value: str) -> None:
    path.write_text(value)


def _read(path: Path) -> str:
    try:
        return path.read_text()
    except OSError:
        return ""


def _stat_field(text: str, name: str) -> int | None:
    for line in text.splitlines():
        key, _, value = line.partition(" ")
        if key == name and value.strip().isdigit():
            return int(value)
    return None


def _start_time(pid: int) -> int | None:
    """A process's start time (clock ticks after boot): with its PID, who it is."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return None
    return int(stat.rsplit(")", 1)[1].split()[19])


def _owner_tag() -> str:
    return f"{os.getpid()}-{_start_time(os.getpid()) or 0}"


def _owner_alive(pid: int, started: int) -> bool:
    return _start_time(pid) == started


@dataclass(frozen=True)
class KernelGroup:
    """One kernel's cgroup: a folder per hierarchy (v2: one; v1: cpu, memory, maybe pids)."""

    version: str
    dirs: tuple[Path, ...]

    @property
    def name(self) -> str:
        return self.dirs[0].name

    def _file(self, name: str) -> Path | None:
        for folder in self.dirs:
            if (folder / name).exists():
                return folder / name
        return None

    def apply(self, budget: Budget) -> None:
        quota = max(1000, round(budget.cpus * PERIOD_US))
        if self.version == "v2":
            folder = self.dirs[0]
            _write(folder / "cpu.max", f"{quota} {PERIOD_US}")
            _write(folder / "memory.max", str(budget.memory_bytes))
            if (folder / "memory.swap.max").exists():
                _write(folder / "memory.swap.max", "0")
            if (folder / "pids.max").exists():
                _write(folder / "pids.max", str(budget.processes))
            return
        values = [
            ("cpu.cfs_period_us", str(PERIOD_US)),
            ("cpu.cfs_quota_us", str(quota)),
            ("memory.limit_in_bytes", str(budget.memory_bytes)),
            ("memory.memsw.limit_in_bytes", str(budget.memory_bytes)),  # no swap beyond it
            ("pids.max", str(budget.processes)),
        ]
        for name, value in values:
            if (path := self._file(name)) is not None:
                _write(path, value)

    def join_command(self, cmd: list[str]) -> list[str]:
        """`cmd`, started by a shell that first moves itself into this cgroup. A failed write
        leaves the kernel running without its budget (`holds` tells), never unstarted."""
        writes = " ; ".join(f"echo $$ > {shlex.quote(str(d / 'cgroup.procs'))}" for d in self.dirs)
        return ["/bin/sh", "-c", f'{writes} ; exec "$@"', "dlcourse-cgroup", *cmd]

    def pids(self) -> set[int]:
        found: set[int] = set()
        for folder in self.dirs:
            found |= {int(p) for p in _read(folder / "cgroup.procs").split()}
        return found

    def holds(self, pid: int) -> bool:
        return all(str(pid) in _read(d / "cgroup.procs").split() for d in self.dirs)

    async def joined(self, pid: int, wait: float = 5.0) -> bool:
        """Whether process `pid` (started by `join_command`) has moved in, waiting for it."""
        deadline = time.monotonic() + wait
        while not self.holds(pid):
            if time.monotonic() > deadline or not Path(f"/proc/{pid}").exists():
                return False
            await asyncio.sleep(0.01)
        return True

    def peak_memory(self) -> int | None:
        """The most memory all its processes used together, in bytes."""
        for name in ("memory.peak", "memory.max_usage_in_bytes"):
            if (path := self._file(name)) is not None and (text := _read(path).strip()):
                return int(text)
        return None

    def cpu_throttled(self) -> int:
        """How many scheduling periods the CPU quota cut this kernel short."""
        path = self._file("cpu.stat")
        return (_stat_field(_read(path), "nr_throttled") or 0) if path else 0

    def remove(self, wait: float = 10.0) -> None:
        """Kill every process still in the cgroup, then remove it."""
        kill = self.dirs[0] / "cgroup.kill"
        if self.version == "v2" and kill.exists():
            try:
                _write(kill, "1")
            except OSError:
                pass
        deadline = time.monotonic() + wait
        while (left := self.pids()) and time.monotonic() < deadline:
            for pid in left:  # a fork racing the kill is caught on the next round
                try:
                    os.kill(pid, signal.SIGKILL)
                except OSError:
                    pass
            time.sleep(0.05)
        for folder in self.dirs:
            for _ in range(100):  # rmdir fails while the last exits are being reaped
                try:
                    folder.rmdir()
                    break
                except FileNotFoundError:
                    break
                except OSError:
                    time.sleep(0.05)


@dataclass(frozen=True)
class Hierarchy:
    """Where kernel cgroups go: a folder in one (v2) or each (v1) hierarchy."""

    version: str
    parents: tuple[Path, ...]

    def group(self, name: str) -> KernelGroup:
        return KernelGroup(self.version, tuple(p / name for p in self.parents))

    def create(self, budget: Budget) -> KernelGroup:
        group = self.group(f"{PREFIX}{_owner_tag()}-{secrets.token_hex(4)}")
        made: list[Path] = []
        try:
            for folder in group.dirs:
                folder.mkdir()
                made.append(folder)
            group.apply(budget)
        except OSError as err:
            KernelGroup(self.version, tuple(made)).remove()
            raise CgroupError(err.errno, f"cannot set up a kernel cgroup: {err}") from err
        return group

    def remove_stale(self) -> list[str]:
        """Remove the kernel cgroups of graders that are gone (killed mid-run)."""
        removed = []
        names = {
            entry.name
            for parent in self.parents
            for entry in _subdirs(parent)
            if (m := _NAME.match(entry.name)) and not _owner_alive(int(m[1]), int(m[2]))
        }
        for name in sorted(names):
            group = self.group(name)
            KernelGroup(self.version, tuple(d for d in group.dirs if d.exists())).remove()
            removed.append(name)
        return removed


def _subdirs(folder: Path) -> Iterable[Path]:
    try:
        return [entry for entry in folder.iterdir() if entry.is_dir()]
    except OSError:
        return []


def _mounts() -> list[tuple[str, Path, str, set[str]]]:
    """(root in the hierarchy, mount point, type, super options) of each cgroup mount."""
    found = []
    for line in _read(Path("/proc/self/mountinfo")).splitlines():
        fields, _, tail = line.partition(" - ")
        parts, rest = fields.split(), tail.split()
        if len(parts) >= 5 and len(rest) >= 3 and rest[0] in {"cgroup", "cgroup2"}:
            options = set(rest[2].split(","))
            found.append((parts[3], Path(parts[4].replace("\\040", " ")), rest[0], options))
    return found


def _own_paths() -> dict[str, str]:
    """controller -> this process's cgroup path ("" for v2)."""
    paths = {}
    for line in _read(Path("/proc/self/cgroup")).splitlines():
        _, controllers, path = line.split(":", 2)
        for controller in controllers.split(",") if controllers else [""]:
            paths[controller] = path
    return paths


def _folder(mount_root: str, mount_point: Path, path: str) -> Path | None:
    """Where cgroup `path` is under a mount of hierarchy root `mount_root`."""
    rel = os.path.relpath(path, mount_root)
    return None if rel.startswith("..") else (mount_point / rel).resolve()


def _enable(folder: Path, controllers: Iterable[str]) -> None:
    """Hand these controllers to the children of a v2 cgroup."""
    enabled = set(_read(folder / "cgroup.subtree_control").split())
    for controller in controllers:
        if controller not in enabled:
            _write(folder / "cgroup.subtree_control", f"+{controller}")


def _v2() -> tuple[Hierarchy | None, str]:
    mount = next(((r, p) for r, p, kind, _ in _mounts() if kind == "cgroup2"), None)
    if mount is None:
        return None, "no cgroup v2 mounted"
    root, point = mount
    named = os.environ.get(settings.CGROUP)
    if named:
        candidates = [Path(named)]
    else:
        own = _folder(root, point, _own_paths().get("", "/"))
        candidates = [c for c in (own, own and own.parent, point) if c is not None]
        candidates = [c for c in dict.fromkeys(candidates) if c.is_relative_to(point)]
    reasons = []
    for parent in candidates:
        available = set(_read(parent / "cgroup.controllers").split())
        if not {"cpu", "memory"} <= available:
            reasons.append(f"{parent}: no cpu and memory controllers")
            continue
        wanted = ["cpu", "memory", *(["pids"] if "pids" in available else [])]
        try:
            _enable(parent, wanted)
        except OSError as err:
            why = "it holds processes" if err.errno == errno.EBUSY else err.strerror
            reasons.append(f"{parent}: {why}")
            continue
        return Hierarchy("v2", (parent,)), ""
    return None, "cgroup v2: " + "; ".join(reasons)


def _v1() -> tuple[Hierarchy | None, str]:
    own = _own_paths()
    parents = []
    for controller in V1_CONTROLLERS:
        mount = next(
            ((r, p) for r, p, kind, opts in _mounts() if kind == "cgroup" and controller in opts),
            None,
        )
        folder = mount and controller in own and _folder(*mount, own[controller])
        if not folder:
            if controller == "pids":
                continue
            return None, f"cgroup v1: no {controller} hierarchy of this process"
        if not os.access(folder, os.W_OK):
            if controller == "pids":
                continue
            return None, f"cgroup v1: {folder} is not writable"
        parents.append(folder)
    return Hierarchy("v1", tuple(parents)), ""


@cache
def available() -> tuple[Hierarchy | None, str]:
    """Where kernel cgroups go here, or (None, why not); probed once per process (a test
    cgroup is made and removed). Stale kernel cgroups of killed graders are removed."""
    if os.environ.get(settings.CGROUP) == "none":
        return None, f"turned off by {settings.CGROUP}=none"
    reasons = []
    for find in (_v2, _v1):
        hierarchy, why = find()
        if hierarchy is None:
            reasons.append(why)
            continue
        try:
            hierarchy.create(Budget(1.0, 2**30, 64)).remove()
        except CgroupError as err:
            reasons.append(f"cgroup {hierarchy.version}: {err.strerror}")
            continue
        hierarchy.remove_stale()
        return hierarchy, ""
    return None, "; ".join(reasons)
