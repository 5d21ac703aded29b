"""Run every grading kernel in a sandbox, without Docker.

Each kernel nbgrader starts to autograde a submission is wrapped, where the machine allows, in

- **bubblewrap** (`bwrap`, Debian package `bubblewrap`): a new mount namespace in which the
  kernel sees the system and the Python environment read-only, the data sets read-only, and
  can write only to size-limited tmpfs mounts of its own, owned by the kernel's user: a
  private `/tmp`, `HOME`, and its working directory (a copy of the files handed out with the
  assignment). Nothing it writes lands on the machine's disk, so a submission that writes
  until the disk is full fills only its own tmpfs (and, with cgroups, its memory budget:
  tmpfs pages count there). The IPC directory where it creates its sockets is taken from
  it once they exist (`_seal_ipc`): as root it becomes root's; as an ordinary user the
  sockets move to a folder it never sees and the directory is removed. The
  course directory (`source/`, `gradebook.db`, `submitted/`, the exchange, other students'
  work) simply does not exist in there. We chose bubblewrap over plain `unshare` + bind mounts
  because it is one small setuid-free binary that builds the whole view declaratively, kills
  the sandbox with its parent, and runs unprivileged where user namespaces are allowed;
- a new **network namespace** (bwrap `--unshare-net`, or `unshare -n` / `unshare -rn` when
  bubblewrap is missing): only a loopback interface of its own. The kernel therefore talks to
  nbgrader over IPC (unix) sockets in the scratch directory, not TCP;
- a new **PID namespace**: when the kernel is shut down, everything it started dies with it;
- **resource limits** (`prlimit`): address space, CPU seconds, processes, open files, size of
  a written file. The process limit counts per user, so as root the kernel also drops to an
  unprivileged user of its own (`setpriv`) — root ignores RLIMIT_NPROC, and the limit counts
  all processes of a user;
- a **CPU and memory budget per kernel** (cgroups, `dlcourse.grader.cgroups`): a CPU quota
  and a memory limit for the kernel's whole process tree, so a kernel that forks spinning or
  allocating processes slows and starves only itself, not the kernel graded beside it;
- a **wall-clock limit per notebook**, on top of nbgrader's per-cell timeout
  (`SandboxedExecute`, below).

Whatever the machine lacks is switched off and said loudly: `protections()` tells, the
autograde driver prints it before grading, the report records it, and
`python -m dlcourse doctor` lists it.
"""

from __future__ import annotations

import asyncio
import importlib.util
import os
import secrets
import shutil
import subprocess
import sys
import tempfile
from collections.abc import Mapping
from dataclasses import dataclass, field, replace
from functools import cache
from pathlib import Path
from typing import Any

from jupyter_client.manager import AsyncKernelManager

from dlcourse import settings
from dlcourse.grader import cgroups

SANDBOX_ENV = settings.SANDBOX  # "0" turns the sandbox off: refused unless explicitly allowed
# As root, each kernel runs as a user of its own, picked at random from this range: the
# process limit counts per user, so one student's fork bomb cannot starve another's kernel.
KERNEL_UIDS = range(200_000, 1_000_000)
SYSTEM_DIRS = ("/usr", "/bin", "/sbin", "/lib", "/lib64", "/lib32", "/etc")


@dataclass(frozen=True)
class Limits:
    """Per-kernel limits; nbgrader_config.py sets the course's own (and explains them)."""

    memory_mb: int = 6144  # address space; TensorFlow alone maps about 2 GB of it
    cpu_seconds: int = 600  # CPU time of the whole kernel (all threads, all cells)
    processes: int = 512  # TensorFlow starts dozens of threads, and threads count
    open_files: int = 1024
    file_size_mb: int = 256  # the largest file the kernel may write
    notebook_seconds: int = 300  # wall clock for one notebook, all cells together
    tmp_mb: int = 512  # the kernel's private /tmp (a tmpfs: memory, counted here)
    work_mb: int = 256  # its working directory and its HOME: a tmpfs of this size each
    # Wall clock for one student, every run of their submission together (autograde, crash
    # locator, re-grade, retry alone); 0: derived from notebook_seconds (driver.GradingLimits).
    grading_seconds: int = 0
    cpus: float = 1.0  # CPU quota of the kernel's whole process tree (with cgroups)


@dataclass(frozen=True)
class Protections:
    filesystem: bool
    network: bool
    pid_namespace: bool
    limits: bool
    own_user: bool  # each kernel runs as a user of its own (only possible as root)
    how: str
    missing: tuple[str, ...] = field(default_factory=tuple)
    cgroup: str = ""  # "v2"/"v1": each kernel has a CPU and memory budget; "": none

    _LABELS = {
        "filesystem": "filesystem isolation",
        "network": "network isolation",
        "pid_namespace": "process isolation",
        "limits": "resource limits",
        "own_user": "a user of its own per kernel (else the process limit is shared)",
        "budget": "CPU and memory budget per kernel",
    }

    @property
    def budget(self) -> bool:
        return bool(self.cgroup)

    def _label(self, key: str) -> str:
        if key != "budget":
            return self._LABELS[key]
        return f"{self._LABELS[key]}: " + (f"cgroup {self.cgroup}" if self.cgroup else "none")

    @property
    def off(self) -> list[str]:
        return [self._label(key) for key in self._LABELS if not getattr(self, key)]

    @property
    def on(self) -> list[str]:
        return [self._label(key) for key in self._LABELS if getattr(self, key)]

    @property
    def isolated(self) -> bool:
        """Student code cannot reach the course (the one protection grading needs)."""
        return self.filesystem

    def summary(self) -> str:
        """Per protection what is on and off; "OFF" only when student code is not isolated."""
        if not self.off:
            return f"sandbox: all protections on ({self.how}; {self._label('budget')})"
        state = "on" if self.isolated else "OFF, student code is not isolated from the course"
        text = f"sandbox: {state} ({self.how}); on: {', '.join(self.on) or 'nothing'}"
        text += f"; off: {', '.join(self.off)}"
        if self.missing:
            text += f"; to fix: {'; '.join(self.missing)}"
        return text

    def warning(self) -> str | None:
        """What an instructor must be told before grading, or None."""
        if not self.isolated:
            return (
                "WARNING: student code runs without filesystem isolation (see above): it can "
                "read the course, the hidden tests and this process's environment"
            )
        if not self.budget:
            return (
                "WARNING: no CPU and memory budget per kernel (no usable cgroups, see above): "
                "kernels graded side by side share this machine's CPUs and memory, so a "
                "submission that forks many busy processes can slow its neighbours down until "
                "their cells time out (each process still has its own limits)"
            )
        return None


def enabled() -> bool:
    return settings.sandbox_enabled()


class SandboxUnavailable(RuntimeError):
    """Grading untrusted code without filesystem isolation, and nobody said that is fine."""


def refusal(prot: Protections | None = None) -> str | None:
    """Why grading must not start here, or None. Without filesystem isolation a submission
    can read the hidden tests and delete the course: refuse unless the instructor opted out
    with DLCOURSE_ALLOW_UNSANDBOXED=1."""
    prot = prot or protections()
    if prot.filesystem or settings.unsandboxed_allowed():
        return None
    fix = "; ".join(prot.missing) or f"unset {SANDBOX_ENV}"
    return (
        f"refusing to grade student code without filesystem isolation ({prot.summary()}). "
        f"To fix: {fix}. To grade anyway, at your own risk (a submission can then read the "
        f"hidden tests, the grader's own environment with any token or password in it, and "
        f"change or delete the course), set {settings.ALLOW_UNSANDBOXED}=1."
    )


def _fails(cmd: list[str]) -> str | None:
    """Why `cmd` fails (its last line of stderr, or what stopped it), or None if it works."""
    try:
        done = subprocess.run(cmd, check=False, capture_output=True, text=True, timeout=20)
    except (OSError, subprocess.TimeoutExpired) as err:
        return str(err)
    if done.returncode == 0:
        return None
    lines = (done.stderr or "").strip().splitlines()
    return lines[-1] if lines else f"exit status {done.returncode}"


def _works(cmd: list[str]) -> bool:
    return _fails(cmd) is None


@cache
def protections() -> Protections:
    """Probe once what this machine allows (each probe runs `true` in a would-be sandbox)."""
    if not enabled():
        return Protections(False, False, False, False, False, f"turned off by {SANDBOX_ENV}=0")
    root = os.geteuid() == 0
    missing: list[str] = []
    bwrap = shutil.which("bwrap")
    prlimit = shutil.which("prlimit")
    setpriv = shutil.which("setpriv")
    probe = [bwrap, *_bwrap_base(Limits().tmp_mb * 2**20), "--", "true"] if bwrap else []
    bwrap_error = _fails(probe) if bwrap else "not installed"
    bwrap_ok = bwrap_error is None
    if not bwrap:
        missing.append("install bubblewrap (apt-get install bubblewrap)")
    elif not bwrap_ok:
        missing.append(
            f"bwrap cannot build the sandbox here ({bwrap_error}): user namespaces may be "
            "off for this account (Ubuntu 24.04's AppArmor restricts them), or this is a "
            "container whose /proc is partly masked (Docker, LXC); grade as root, or on a "
            "host or VM"
        )
    unshare = shutil.which("unshare")
    unshare_flags = ["-n"] if root else ["-rn"]
    unshare_ok = not bwrap_ok and bool(unshare) and _works([unshare, *unshare_flags, "true"])
    limits = bool(prlimit)
    if not limits:
        missing.append("install util-linux (prlimit)")
    drop = root and bool(setpriv) and bwrap_ok
    hierarchy, no_cgroup = cgroups.available()
    if hierarchy is None:
        missing.append(f"no CPU and memory budget per kernel ({no_cgroup})")
    how = (
        "bubblewrap" if bwrap_ok else f"unshare {' '.join(unshare_flags)}" if unshare_ok else "none"
    )
    return Protections(
        filesystem=bwrap_ok,
        network=bwrap_ok or unshare_ok,
        pid_namespace=bwrap_ok,
        limits=limits,
        own_user=drop,
        how=how,
        missing=tuple(missing),
        cgroup=hierarchy.version if hierarchy else "",
    )


def _bwrap_base(tmp_bytes: int | None = None) -> list[str]:
    """bwrap's namespaces and system mounts; a private /tmp of `tmp_bytes` (a tmpfs, mode
    0700; as root, `wrap_command` hands it to the kernel's user before dropping to it)."""
    args = ["--unshare-net", "--unshare-pid", "--unshare-ipc", "--unshare-uts"]
    args += ["--die-with-parent", "--new-session", "--dev", "/dev", "--proc", "/proc"]
    if tmp_bytes:
        args += ["--perms", "0700", "--size", str(tmp_bytes)]
    args += ["--tmpfs", "/tmp"]
    for path in SYSTEM_DIRS:
        if os.path.exists(path):
            args += ["--ro-bind", path, path]
    if os.geteuid() != 0:
        # Unprivileged (e.g. the course's grader account on JupyterHub, which
        # tests/test_hub.py grades as): a user namespace first. Where unprivileged user
        # namespaces are off (Ubuntu's AppArmor restriction), the probe fails and grading
        # refuses with the reason.
        args.insert(0, "--unshare-user")
    return args


def _parent_dirs(targets: list[Path]) -> list[str]:
    """bwrap creates missing mount points as 0700 directories, which an unprivileged kernel
    cannot traverse: create every parent of a mount point first, world-readable. Parents on
    the read-only system mounts already exist."""
    system = [Path(p) for p in SYSTEM_DIRS]
    parents: set[Path] = set()
    for target in targets:
        parents.update(p for p in target.parents if p != Path("/"))
    args = []
    for parent in sorted(parents, key=lambda p: len(p.parts)):
        if parent in {Path("/tmp"), *system} or any(parent.is_relative_to(s) for s in system):
            continue
        args += ["--perms", "0755", "--dir", str(parent)]
    return args


def readable_mounts() -> list[tuple[Path, Path]]:
    """(source, mount point) of what a grading kernel may read: Python, this package and the
    data sets. Each appears where the kernel will look for it, which may be through a symlink
    (`../shared/data` often is one), and at its real path; parents are mounted first."""
    from dlcourse import data

    paths = {Path(sys.prefix), Path(sys.base_prefix), Path(sys.exec_prefix)}
    spec = importlib.util.find_spec("dlcourse")
    if spec and spec.origin:
        paths.add(Path(spec.origin).parent)
    paths.update(folder for folder in data.candidate_dirs() if folder.is_dir())
    mounts = set()
    for path in paths:
        real = path.resolve()
        mounts |= {(real, real), (real, Path(os.path.abspath(path)))}
    return sorted(mounts, key=lambda m: (len(m[1].parts), str(m[1])))


@dataclass
class Scratch:
    """The only place a sandboxed kernel can write; removed when the kernel is cleaned up."""

    root: Path
    workdir: Path  # mounted over the kernel's working directory
    home: Path
    ipc: Path  # connection file and IPC sockets

    @classmethod
    def create(cls, cwd: Path) -> Scratch:
        root = Path(tempfile.mkdtemp(prefix="dlcourse-kernel-"))
        workdir, home, ipc = root / "work", root / "home", root / "ipc"
        # The kernel starts in a copy of its working directory (files handed out with the
        # assignment), so whatever it writes or deletes there never reaches the course.
        shutil.copytree(cwd, workdir, symlinks=True, ignore=shutil.ignore_patterns("*.ipynb"))
        home.mkdir()
        ipc.mkdir()
        return cls(root, workdir, home, ipc)

    def hand_to(self, uid: int) -> None:
        for path in [self.root, *self.root.rglob("*")]:
            os.lchown(path, uid, uid)

    def remove(self) -> None:
        try:  # an IPC directory left read-only (a kernel that never came up) is emptied too
            self.ipc.chmod(0o700)
        except OSError:
            pass
        shutil.rmtree(self.root, ignore_errors=True)


# What a grading kernel inherits from the grader's environment: an allow-list of exact names,
# never a prefix. Whatever else the grader, the formgrader service or a Dask worker runs with
# (the hub's API token as JUPYTERHUB_API_TOKEN or JPY_API_TOKEN, cookie secrets, the
# gradebook's URL with its password, Terraform's TF_TOKEN_*/TF_VAR_* beside TensorFlow's TF_*)
# stays outside: student code could print it into the feedback they get back. The kernel's own
# settings (HOME, the data folder, quick mode, ...) are set below, not inherited.
KEPT_ENV = frozenset(
    {
        # locale and terminal
        "PATH", "LANG", "LANGUAGE", "TZ", "TERM",
        "LC_ALL", "LC_CTYPE", "LC_NUMERIC", "LC_TIME", "LC_COLLATE", "LC_MONETARY",
        "LC_MESSAGES",
        # Python
        "PYTHONWARNINGS", "PYDEVD_DISABLE_FILE_VALIDATION",
        # TensorFlow's and the math libraries' settings (the GPU to use; the thread budget
        # and the hash seed are the grader's own: `thread_budget`, GRADING_ENV)
        "TF_CPP_MIN_LOG_LEVEL", "TF_CPP_MAX_VLOG_LEVEL", "TF_ENABLE_ONEDNN_OPTS",
        "TF_DETERMINISTIC_OPS", "TF_FORCE_GPU_ALLOW_GROWTH", "TF_GPU_ALLOCATOR",
        "CUDA_VISIBLE_DEVICES", "OPENBLAS_CORETYPE", "OPENBLAS_L2_SIZE", "KMP_AFFINITY",
        "KMP_BLOCKTIME", "MPLBACKEND",
        # the data sets (a path; the default is found below when unset)
        settings.DATA,
    }
)  # fmt: skip


# Whatever the grader's own environment says, grading kernels train in quick mode, with one
# hash seed. What a process inherits differs by door (a Dask worker's nanny sets
# PYTHONHASHSEED and the math libraries' thread counts, a hub its own), and a kernel that
# differs from the reference run's is a different grading environment.
GRADING_ENV = {
    settings.QUICK: "1",
    settings.NBGRADER_EXECUTION: "autograde",
    "PYTHONHASHSEED": "0",
}
THREAD_VARIABLES = ("OMP_NUM_THREADS", "MKL_NUM_THREADS", "OPENBLAS_NUM_THREADS")


def thread_budget(limits: Limits) -> dict[str, str]:
    """The kernel's thread counts: its CPU budget (`Limits.cpus`), whatever the grader
    inherited."""
    n = str(max(1, int(limits.cpus)))
    return {name: n for name in THREAD_VARIABLES} | {
        "TF_NUM_INTRAOP_THREADS": n,
        "TF_NUM_INTEROP_THREADS": "1",
    }


def inherited_environment(given: Mapping[str, str]) -> dict[str, str]:
    """The settings a grading kernel takes from `given`: the allow-listed names only, then
    the course's own (TensorFlow's log level, quick training) over them."""
    kept = {key: value for key, value in given.items() if key in KEPT_ENV}
    return kept | settings.QUIET_TF | GRADING_ENV


def kernel_environment(
    scratch: Scratch, given: dict[str, str], limits: Limits = Limits()
) -> dict[str, str]:
    """The kernel's environment: what jupyter_client would have given it (`given`), scrubbed;
    pointed at the data sets the grader found (the kernel cannot see the course folder)."""
    from dlcourse import data

    kept = inherited_environment(given)
    if settings.DATA not in kept and (folder := data.course_data_dir()) is not None:
        kept[settings.DATA] = str(folder)
    return (
        kept
        | thread_budget(limits)
        | {
            "HOME": str(scratch.home),
            "IPYTHONDIR": str(scratch.home / ".ipython"),
            "MPLCONFIGDIR": str(scratch.home / ".matplotlib"),
            "JUPYTER_RUNTIME_DIR": str(scratch.ipc),
            "TMPDIR": "/tmp",
        }
    )


def kernel_uid() -> int:
    return KERNEL_UIDS[secrets.randbelow(len(KERNEL_UIDS))]


def drops_privileges(prot: Protections) -> bool:
    return os.geteuid() == 0 and prot.filesystem and prot.own_user


def tasks_of(uid: int) -> int:
    """Processes and threads of a user now: what RLIMIT_NPROC counts."""
    count = 0
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                if entry.stat().st_uid == uid:
                    count += len(os.listdir(entry / "task"))
            except OSError:  # the process ended meanwhile
                continue
    return count


def process_limit(limits: Limits, prot: Protections) -> int | None:
    """RLIMIT_NPROC for a kernel: its own budget as a user of its own; as an ordinary user,
    the budget on top of what that user already runs; as root (which ignores it), none."""
    if drops_privileges(prot):
        return limits.processes
    if os.geteuid() != 0:
        return limits.processes + tasks_of(os.getuid())
    return None


# Run first in the sandbox: copy the handed-out files ($1, read-only) into the working
# directory's tmpfs ($2), then the kernel command.
_FILL_WORKDIR = 'cp -a "$1/." "$2/" && shift 2 && exec "$@"'


def wrap_command(
    cmd: list[str],
    scratch: Scratch,
    cwd: Path,
    limits: Limits,
    prot: Protections,
    uid: int,
    env: dict[str, str],
) -> list[str]:
    """The kernel command, wrapped in whatever protections this machine has."""
    inner = list(cmd)
    if prot.limits:
        inner = [
            shutil.which("prlimit") or "prlimit",
            f"--as={limits.memory_mb * 2**20}",
            f"--cpu={limits.cpu_seconds}",
            f"--nofile={limits.open_files}",
            f"--fsize={limits.file_size_mb * 2**20}",
            "--core=0",
            *([f"--nproc={nproc}"] if (nproc := process_limit(limits, prot)) else []),
            "--",
            *inner,
        ]
    if prot.filesystem:
        if drops_privileges(prot):
            drop = [shutil.which("setpriv") or "setpriv", f"--reuid={uid}"]
            drop += [f"--regid={uid}", "--clear-groups", "--"]
            # The tmpfs mounts become the kernel user's own (bwrap makes them root's; the
            # copied files already are, `Scratch.hand_to`), then root is dropped.
            own = 'chown "$0:$0" /tmp "$1" "$2" && shift 2 && exec "$@"'
            inner = [shutil.which("sh") or "/bin/sh", "-c", own, str(uid), str(cwd),
                     str(scratch.home), *drop, *inner]  # fmt: skip
        # The working directory and HOME are tmpfs mounts of their own, not the scratch
        # folders on the machine's disk; the handed-out files are copied in from a read-only
        # view of the scratch copy before the kernel starts (fails closed: a copy that does
        # not fit stops the kernel).
        inner = [shutil.which("sh") or "/bin/sh", "-c", _FILL_WORKDIR, "sh",
                 str(scratch.workdir), str(cwd), *inner]  # fmt: skip
        mounts = [("--ro-bind", source, dest) for source, dest in readable_mounts()]
        mounts += [("--ro-bind", scratch.workdir, scratch.workdir)]
        mounts += [("--tmpfs", None, path) for path in (cwd, scratch.home)]
        mounts += [("--bind", scratch.ipc, scratch.ipc)]
        outer = [shutil.which("bwrap") or "bwrap", *_bwrap_base(limits.tmp_mb * 2**20)]
        outer += _parent_dirs([dest for _, _, dest in mounts])
        for how, source, dest in mounts:
            if source is None:  # a tmpfs of the kernel's own, as /tmp is
                outer += ["--size", str(limits.work_mb * 2**20), "--perms", "0700"]
                outer += [how, str(dest)]
            else:
                outer += [how, str(source), str(dest)]
        outer += ["--chdir", str(cwd)]
        # ipykernel quits when its parent looks like init, as bwrap's init does in the PID
        # namespace; PID 1 tells it not to watch (bwrap kills the kernel with its parent).
        outer += ["--clearenv", "--setenv", "JPY_PARENT_PID", "1"]
        for key, value in env.items():
            outer += ["--setenv", key, value]
        return [*outer, "--", *inner]
    env_cmd = ["env", "-i", *(f"{k}={v}" for k, v in env.items())]
    if prot.network:
        flags = ["-n"] if os.geteuid() == 0 else ["-rn"]
        return [shutil.which("unshare") or "unshare", *flags, "--", *env_cmd, *inner]
    return [*env_cmd, *inner]


def with_kernel_start(cmd: list[str]) -> list[str]:
    """An IPython kernel's command that runs `dlcourse.probe.kernel_start` before any cell:
    the probe, TensorFlow's classes and the real builtins are loaded and kept before a cell
    above the setup cell (or any other) could patch them. Any other kernel: unchanged."""
    if not any("ipykernel" in part for part in cmd):
        return list(cmd)
    from dlcourse import probe

    return [*cmd, f"--IPKernelApp.exec_lines={probe.KERNEL_START}"]


class SandboxedKernelManager(AsyncKernelManager):
    """A kernel manager whose kernels run sandboxed and talk over IPC sockets."""

    limits = Limits()

    async def _async_pre_start_kernel(self, **kw: Any):
        prot = protections()
        reason = refusal(prot)
        if reason:  # fail closed, whoever starts the kernel (our driver, formgrader, a script)
            raise SandboxUnavailable(reason)
        cwd = Path(kw.get("cwd") or os.getcwd()).resolve()
        kw["cwd"] = str(cwd)
        scratch = self._scratch = Scratch.create(cwd)
        self.transport = "ipc"
        self.ip = str(scratch.ipc / "kernel")
        self.connection_file = str(scratch.ipc / "kernel.json")
        # A signal would reach bwrap, not the kernel: interrupt over the control channel.
        if self.kernel_spec is not None:
            self.kernel_spec.interrupt_mode = "message"
        cmd, kw = await super()._async_pre_start_kernel(**kw)
        cmd = with_kernel_start(cmd)
        uid = kernel_uid()
        if drops_privileges(prot):
            scratch.hand_to(uid)
        env = kernel_environment(scratch, kw.get("env") or dict(os.environ), self.limits)
        cmd = wrap_command(cmd, scratch, cwd, self.limits, prot, uid, env)
        # bwrap/env start from an empty environment; the kernel's own output to its file
        # descriptors (what ipykernel does not forward) never reaches the grader's memory.
        kw["env"] = {"PATH": env.get("PATH", os.defpath)}
        kw["stdout"] = kw["stderr"] = subprocess.DEVNULL
        return self._enter_budget(cmd, prot), kw

    def _enter_budget(self, cmd: list[str], prot: Protections) -> list[str]:
        """`cmd`, made to start in a cgroup of its own with this kernel's CPU and memory
        budget. Fails safe: where the cgroup cannot be made, the kernel runs with its
        per-process limits only, and the log says so."""
        self._budget_group = None
        hierarchy, _ = cgroups.available()
        if not prot.cgroup or hierarchy is None:
            return cmd
        budget = cgroups.Budget(
            self.limits.cpus, self.limits.memory_mb * 2**20, self.limits.processes
        )
        try:
            self._budget_group = hierarchy.create(budget)
        except cgroups.CgroupError as err:
            self.log.warning("this kernel runs without its CPU and memory budget: %s", err)
            return cmd
        return self._budget_group.join_command(cmd)

    async def _async_post_start_kernel(self, **kw: Any) -> None:
        await super()._async_post_start_kernel(**kw)
        await self._seal_ipc()
        group, pid = getattr(self, "_budget_group", None), getattr(self.provisioner, "pid", None)
        if group is not None and pid is not None and not await group.joined(pid):
            self.log.warning(
                "this kernel runs without its CPU and memory budget: not in %s", group.name
            )

    async def _seal_ipc(self, timeout: float = 60.0) -> None:
        """Once the kernel has made its sockets in the IPC directory (on the machine's disk),
        take the directory and the connection file from it: as root, they become root's (the
        kernel runs as a user of its own), so it can create nothing more there. As an
        ordinary user, the kernel is that same user and could make them writable again:
        the sockets leave the directory and the directory is removed (`_take_sockets`)."""
        scratch = getattr(self, "_scratch", None)
        if scratch is None or not protections().filesystem:
            return
        info = self.get_connection_info()
        ports = [info[k] for k in ("shell_port", "iopub_port", "stdin_port", "control_port",
                                   "hb_port")]  # fmt: skip
        sockets = [Path(f"{self.ip}-{port}") for port in ports]
        deadline = asyncio.get_running_loop().time() + timeout
        while not all(s.exists() for s in sockets):
            if not await self.is_alive() or asyncio.get_running_loop().time() > deadline:
                return  # the kernel never came up: its client fails to connect
            await asyncio.sleep(0.05)
        if os.geteuid() != 0:
            self._take_sockets(scratch, sockets)
            return
        paths = [scratch.ipc, *scratch.ipc.iterdir()]
        for path in paths:
            if os.geteuid() == 0:
                os.lchown(path, 0, 0)
            if path.is_symlink() or path.is_socket():
                continue
            path.chmod(0o755 if path.is_dir() else 0o644)

    def _take_sockets(self, scratch: Scratch, sockets: list[Path]) -> None:
        """Move the kernel's sockets and the connection file into a folder of the scratch that
        the sandbox does not show (a renamed socket keeps its listener: the client connects
        there), then remove the IPC directory. The kernel's view of it, a bind mount, is
        detached with it, and a removed directory takes no new entry: from then on the
        kernel writes only to its size-limited tmpfs mounts, never to the machine's disk.
        Nothing of the student's has run yet (the kernel has not answered kernel_info)."""
        taken = scratch.root / "sockets"
        taken.mkdir(mode=0o700)
        for path in sockets:
            os.rename(path, taken / path.name)
        connection_file = Path(self.connection_file)
        os.rename(connection_file, taken / connection_file.name)
        self.connection_file = str(taken / connection_file.name)
        self.ip = str(taken / Path(self.ip).name)
        for path in scratch.ipc.iterdir():  # what ipykernel may have left there
            if path.is_dir() and not path.is_symlink():
                shutil.rmtree(path, ignore_errors=True)
            else:
                path.unlink(missing_ok=True)
        scratch.ipc.rmdir()

    def _leave_budget(self) -> None:
        """Kill whatever the kernel left running in its cgroup, and remove the cgroup."""
        group, self._budget_group = getattr(self, "_budget_group", None), None
        if group is not None:
            group.remove()

    async def _async_cleanup_resources(self, restart: bool = False) -> None:
        await super()._async_cleanup_resources(restart=restart)
        self._leave_budget()
        scratch = getattr(self, "_scratch", None)
        if scratch is not None and not restart:
            scratch.remove()

    cleanup_resources = _async_cleanup_resources


def limits_for(assignment: str | None, base: Limits, per_assignment: dict[str, dict]) -> Limits:
    return replace(base, **per_assignment.get(assignment or "", {}))
