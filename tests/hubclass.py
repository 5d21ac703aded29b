"""A throwaway class on a real JupyterHub, for tests/test_hub.py: Unix accounts (removed
afterwards, their processes stopped by PID), a course directory owned by the grader account,
a 1777 exchange, a roster imported with `python -m dlcourse roster`.

Everything lives in one folder the test makes with tempfile (not pytest's basetemp, whose
folders are 0700 root and out of the Unix users' reach). The users' processes run the repo's
venv, so every directory above it must be traversable by them: `traversable()` adds the `x`
bit for others where it is missing (a pyenv Python under a 0700 /root, typically) and takes
it away again.
"""

from __future__ import annotations

import contextlib
import os
import pwd
import secrets
import shutil
import signal
import stat
import subprocess
import sys
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
WORKSHEET = "ws01_tensors"


def run_as(user: str, *cmd: str, cwd: Path | None = None, env: dict | None = None):
    return subprocess.run(
        ["runuser", "-u", user, "--", *cmd],
        cwd=cwd,
        env=env,
        capture_output=True,
        text=True,
        check=False,
    )


@contextlib.contextmanager
def traversable(paths: list[Path]) -> Iterator[list[Path]]:
    """o+x on every directory above `paths` that lacks it; restored on exit."""
    changed: list[tuple[Path, int]] = []
    try:
        for path in paths:
            for folder in reversed(path.resolve().parents):
                mode = folder.stat().st_mode
                if not mode & stat.S_IXOTH:
                    folder.chmod(stat.S_IMODE(mode) | stat.S_IXOTH)
                    changed.append((folder, stat.S_IMODE(mode)))
        yield [folder for folder, _ in changed]
    finally:
        for folder, mode in reversed(changed):
            folder.chmod(mode)


@dataclass
class Accounts:
    """Unix users made for one test: all removed by `remove()`, after their processes."""

    prefix: str = field(default_factory=lambda: f"dlh{secrets.token_hex(2)}")
    names: list[str] = field(default_factory=list)

    def name(self, role: str) -> str:
        return f"{self.prefix}{role}"

    def add(self, name: str, home: Path | None = None) -> str:
        cmd = ["useradd", "--user-group", "--shell", "/bin/bash", "--create-home"]
        cmd += ["--home-dir", str(home)] if home else []
        self.names.append(name)  # before useradd: a half-made account is removed too
        subprocess.run([*cmd, name], check=True, capture_output=True)
        return name

    def adopt(self, names: list[str]) -> None:
        self.names += [n for n in names if n not in self.names]

    def uids(self) -> set[int]:
        uids = set()
        for name in self.names:
            with contextlib.suppress(KeyError):
                uids.add(pwd.getpwnam(name).pw_uid)
        return uids

    def stop_processes(self) -> None:
        import psutil

        uids = self.uids()
        procs = [
            p
            for p in psutil.process_iter(["uids"])
            if p.info["uids"] is not None and p.info["uids"].real in uids
        ]
        for proc in procs:
            with contextlib.suppress(psutil.NoSuchProcess):
                proc.send_signal(signal.SIGTERM)
        _, alive = psutil.wait_procs(procs, timeout=10)
        for proc in alive:
            with contextlib.suppress(psutil.NoSuchProcess):
                proc.kill()
        psutil.wait_procs(alive, timeout=5)

    def remove(self) -> None:
        self.stop_processes()
        for name in self.names:
            subprocess.run(["userdel", "--remove", name], capture_output=True, check=False)
            subprocess.run(["groupdel", name], capture_output=True, check=False)


def resident_mb(user: str) -> dict[str, float]:
    """Resident memory (MB) of each process `user` runs, by PID and command (for README's
    capacity figures; printed by the test)."""
    import psutil

    uid = pwd.getpwnam(user).pw_uid
    found = {}
    for proc in psutil.process_iter(["uids", "cmdline", "memory_info"]):
        if proc.info["uids"].real == uid and proc.info["memory_info"]:
            name = " ".join(Path(a).name for a in (proc.info["cmdline"] or [])[:3])
            found[f"{proc.pid} {name}"] = proc.info["memory_info"].rss / 2**20
    return found


@dataclass
class HubClass:
    root: Path
    accounts: Accounts
    grader: str
    students: list[str]
    course: Path
    exchange: Path
    state: Path
    roster: Path

    def env(self, password: str) -> dict[str, str]:
        """The hub's (and the grader's commands') environment, as README's set-up has it."""
        from dlcourse import hub

        env = {k: v for k, v in os.environ.items() if not k.startswith(("PYTEST_", "JUPYTER"))}
        data = hub.data_dir()
        if data is not None:
            env["DLCOURSE_DATA"] = str(data)
        return env | {
            "DLCOURSE_HUB_COURSE_DIR": str(self.course),
            "DLCOURSE_HUB_GRADER": self.grader,
            "DLCOURSE_HUB_ROSTER": str(self.roster),
            "DLCOURSE_EXCHANGE": str(self.exchange),
            "DLCOURSE_HUB_STAFF": "",
            "DLCOURSE_HUB_FORMGRADER_PORT": str(free_port()),
            "DLCOURSE_HUB_THREADS": "1",
            "DLCOURSE_HUB_TEST_PASSWORD": password,
            "DLCOURSE_QUICK": "1",
            "PATH": f"{Path(sys.executable).parent}{os.pathsep}{os.environ.get('PATH', '')}",
        }

    def as_grader(self, *args: str, env: dict | None = None):
        """A command of the course's, as the grader account, in the course directory."""
        return run_as(self.grader, sys.executable, *args, cwd=self.course, env=env)


def free_port() -> int:
    from servers import free_port as port

    return port()


def make_class(accounts: Accounts, root: Path, n_students: int = 3) -> HubClass:
    """The class in `root` (made by tempfile: removed by the caller)."""
    root.chmod(0o755)
    grader = accounts.add(accounts.name("grader"), root / "home" / "grader")
    students = [accounts.name(f"s{i}") for i in range(1, n_students + 1)]
    accounts.adopt(students)  # `dlcourse roster --unix-users` creates them

    course = root / "course"
    course.mkdir()
    shutil.copy(REPO / "nbgrader_config.py", course)
    shutil.copytree(REPO / "source" / WORKSHEET, course / "source" / WORKSHEET)
    subprocess.run(["chown", "-R", f"{grader}:{grader}", str(course)], check=True)
    course.chmod(0o700)
    exchange = root / "exchange"
    exchange.mkdir()
    exchange.chmod(0o1777)  # nbgrader's exchange: everyone writes, the sticky bit protects
    state = root / "state"
    state.mkdir(mode=0o700)

    roster = root / "class.csv"
    rows = ["id,first_name,last_name,email"]
    rows += [f"{s},Student,{s[-2:].upper()},{s}@example.invalid" for s in students]
    roster.write_text("\n".join(rows) + "\n")
    done = subprocess.run(
        [sys.executable, "-m", "dlcourse", "roster", str(roster), "--unix-users"]
        + ["--course", str(course), "--grader", grader],
        capture_output=True,
        text=True,
        check=False,
    )
    assert done.returncode == 0, done.stdout + done.stderr
    return HubClass(
        root, accounts, grader, students, course, exchange, state, course / "roster.csv"
    )


def release(hc: HubClass, env: dict[str, str]) -> None:
    """The instructor generates and releases the worksheet (nbgrader, as the grader)."""
    for args in (
        ["generate_assignment", WORKSHEET, "--force"],
        ["release_assignment", WORKSHEET, "--force"],
    ):
        done = hc.as_grader("-m", "nbgrader", *args, env=env)
        assert done.returncode == 0, f"nbgrader {args}: {done.stdout}\n{done.stderr}"
