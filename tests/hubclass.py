"""A throwaway class on a real JupyterHub, for tests/test_hub.py, installed as README says:
a copy of this checkout stands for the clone, and deploy/jupyterhub/install-hub.sh installs
from it into one folder (the venv everybody uses, the course directory, the exchange, the
hub's state; paths given through its settings), creating the grader and a
staff account; `python -m dlcourse roster --unix-users` (the venv's) creates the students.
Every account is removed afterwards, its processes stopped by PID.

The folder is made with tempfile (not pytest's basetemp, whose folders are 0700 root and out
of the Unix users' reach). Nothing the users run comes from this checkout: their servers,
kernels and the grader's commands use the installed venv.

`secret_lines()` and `readable_secrets()` check what a student can read: the solution and
hidden-test lines of source/, searched for in every file the student's own process reads.
"""

from __future__ import annotations

import contextlib
import grp
import html
import json
import os
import pwd
import secrets
import shutil
import signal
import subprocess
import sys
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
WORKSHEET = "ws01_tensors"
INSTALL = REPO / "deploy" / "jupyterhub" / "install-hub.sh"


def run_as(user: str, *cmd: str, cwd: Path | None = None, env: dict | None = None):
    return subprocess.run(
        ["runuser", "-u", user, "--", *cmd],
        cwd=cwd,
        env=env,
        capture_output=True,
        text=True,
        check=False,
    )


@dataclass
class Accounts:
    """Unix users made for one test: all removed by `remove()`, after their processes."""

    prefix: str = field(default_factory=lambda: f"dlh{secrets.token_hex(2)}")
    names: list[str] = field(default_factory=list)
    groups: list[str] = field(default_factory=list)  # other groups made for the test

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
        for name in self.groups:
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
    staff: str
    students: list[str]
    settings: dict[str, str]  # the DLCOURSE_* settings of the install and the hub

    @property
    def clone(self) -> Path:
        return Path(self.settings["DLCOURSE_SRC"])

    @property
    def venv(self) -> Path:
        return Path(self.settings["DLCOURSE_HUB_ENV"])

    @property
    def python(self) -> Path:
        return self.venv / "bin" / "python"

    @property
    def course(self) -> Path:
        return Path(self.settings["DLCOURSE_HUB_COURSE_DIR"])

    @property
    def exchange(self) -> Path:
        return Path(self.settings["DLCOURSE_EXCHANGE"])

    @property
    def state(self) -> Path:
        return Path(self.settings["DLCOURSE_HUB_STATE"])

    @property
    def hub_config(self) -> Path:
        return self.venv / "share" / "dlcourse" / "deploy" / "jupyterhub" / "jupyterhub_config.py"

    def env(self, password: str) -> dict[str, str]:
        """The hub's (and the grader's commands') environment: the install's settings but
        DLCOURSE_HUB_STAFF (the staff come from the Unix group install-hub.sh made, as after a
        restart without the variable), the test password, the installed config for
        tests/hub_test_config.py to load."""
        skip = ("PYTEST_", "JUPYTER", "DLCOURSE_HUB_")
        env = {k: v for k, v in os.environ.items() if not k.startswith(skip)}
        own = ("DLCOURSE_SRC", "DLCOURSE_HUB_STAFF")
        return (
            env
            | {k: v for k, v in self.settings.items() if k not in own}
            | {
                "DLCOURSE_HUB_TEST_PASSWORD": password,
                "DLCOURSE_HUB_TEST_DEPLOY_CONFIG": str(self.hub_config),
                "DLCOURSE_QUICK": "1",
                "PATH": os.pathsep.join([str(self.venv / "bin"), *_system_path()]),
            }
        )

    def as_grader(self, *args: str, env: dict | None = None):
        """A command of the course's, as the grader account, in the course directory, with
        the installed venv's Python (README's grading command)."""
        return run_as(self.grader, str(self.python), *args, cwd=self.course, env=env)


def free_port() -> int:
    from servers import free_port as port

    return port()


def _system_path() -> list[str]:
    """PATH without this checkout's venv (as root's shell on the server has it)."""
    venv = str(REPO / ".venv")
    path = os.environ.get("PATH", "/usr/sbin:/usr/bin:/sbin:/bin").split(os.pathsep)
    return [d for d in path if d and not d.startswith(venv)]


def copy_checkout(dest: Path) -> None:
    """What a clone of this checkout would hold, with its uncommitted edits: the files git
    tracks or would track (ignored ones left out: .venv, data, artifacts)."""
    listed = subprocess.run(
        ["git", "ls-files", "-z", "--cached", "--others", "--exclude-standard"],
        cwd=REPO,
        capture_output=True,
        check=True,
    ).stdout.split(b"\0")
    for name in filter(None, (n.decode() for n in listed)):
        source = REPO / name
        if source.is_file():
            (dest / name).parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(source, dest / name)


def install_class(accounts: Accounts, root: Path, n_students: int = 3) -> HubClass:
    """README's install in `root` (made by tempfile: removed by the caller): the clone, then
    install-hub.sh, then the roster."""
    from dlcourse import hub

    root.chmod(0o755)
    grader, staff = accounts.name("grader"), accounts.name("ta")
    students = [accounts.name(f"s{i}") for i in range(1, n_students + 1)]
    accounts.adopt([grader, staff, *students])  # created by install-hub.sh and the roster
    staff_group = "formgrade-dlcourse"  # install-hub.sh's Unix group of the course's staff
    try:
        grp.getgrnam(staff_group)
    except KeyError:
        accounts.groups.append(staff_group)  # made by the install: removed afterwards

    clone = root / "clone"
    clone.mkdir(mode=0o755)  # as `git clone` leaves it: the install must close it
    copy_checkout(clone)
    settings = {
        "DLCOURSE_SRC": str(clone),
        "DLCOURSE_HUB_ENV": str(root / "env"),
        "DLCOURSE_HUB_COURSE_DIR": str(root / "course"),
        "DLCOURSE_HUB_GRADER": grader,
        "DLCOURSE_HUB_STAFF": staff,
        "DLCOURSE_EXCHANGE": str(root / "exchange"),
        "DLCOURSE_HUB_STATE": str(root / "state"),
        "DLCOURSE_HUB_FORMGRADER_PORT": str(free_port()),
        "DLCOURSE_HUB_THREADS": "1",
    }
    data = hub.data_dir()  # this machine's data sets (README: `dlcourse data install`)
    if data is not None:
        settings["DLCOURSE_DATA"] = str(data)
    env = {k: v for k, v in os.environ.items() if not k.startswith(("PYTEST_", "JUPYTER"))}
    env = env | settings | {"PATH": os.pathsep.join(_system_path())}
    env.pop("VIRTUAL_ENV", None)
    done = subprocess.run(
        [str(clone / INSTALL.relative_to(REPO))],
        env=env,
        capture_output=True,
        text=True,
        timeout=1200,
        check=False,
    )
    print(done.stdout[-3000:])
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]

    roster = root / "class.csv"
    rows = ["id,first_name,last_name,email"]
    rows += [f"{s},Student,{s[-2:].upper()},{s}@example.invalid" for s in students]
    roster.write_text("\n".join(rows) + "\n")
    done = subprocess.run(
        [str(root / "env" / "bin" / "python"), "-m", "dlcourse", "roster", str(roster)]
        + ["--unix-users"],
        env=env,
        cwd=root,
        capture_output=True,
        text=True,
        check=False,
    )
    assert done.returncode == 0, done.stdout + done.stderr
    return HubClass(root, accounts, grader, staff, students, settings)


def release(hc: HubClass, env: dict[str, str]) -> None:
    """The instructor generates and releases the worksheet (nbgrader, as the grader)."""
    for args in (
        ["generate_assignment", WORKSHEET, "--force"],
        ["release_assignment", WORKSHEET, "--force"],
    ):
        done = hc.as_grader("-m", "nbgrader", *args, env=env)
        assert done.returncode == 0, f"nbgrader {args}: {done.stdout}\n{done.stderr}"


def _marked_lines(source: str, begin: str, end: str) -> list[str]:
    found, inside = [], False
    for line in source.splitlines():
        text = line.strip()
        if text.startswith(begin):
            inside = True
        elif text.startswith(end):
            inside = False
        elif inside:
            found.append(text)
    return found


def secret_lines(min_length: int = 24) -> set[str]:
    """Lines only the course's master copies hold: between `### BEGIN SOLUTION` and `### END
    SOLUTION` or `### BEGIN HIDDEN TESTS` and `### END HIDDEN TESTS`, and written answers'
    rubrics (dlcourse/grader/written.py), in source/*/*.ipynb, at
    least `min_length` characters (stripped), and not also in what students get anyway (the
    released notebooks in release/, the dlcourse package's code)."""
    public = set()
    for notebook in REPO.glob("release/*/*.ipynb"):
        for cell in json.loads(notebook.read_text())["cells"]:
            public |= {line.strip() for line in "".join(cell["source"]).splitlines()}
    package = "\n".join(p.read_text() for p in (REPO / "dlcourse").rglob("*.py"))
    found = set()
    for notebook in REPO.glob("source/*/*.ipynb"):
        for cell in json.loads(notebook.read_text())["cells"]:
            text = "".join(cell["source"])
            found |= set(_marked_lines(text, "### BEGIN SOLUTION", "### END SOLUTION"))
            found |= set(_marked_lines(text, "### BEGIN HIDDEN TESTS", "### END HIDDEN TESTS"))
            if "rubric_for" in cell["metadata"].get("dlcourse", {}):  # grader/written.py
                found |= {line.strip() for line in text.splitlines()}
    return {s for s in found if len(s) >= min_length and s not in public and s not in package}


def patterns(lines: set[str]) -> str:
    """Each line as it is (a .py file), as a notebook's JSON has it and as HTML has it."""
    forms = set()
    for line in lines:
        forms |= {line, json.dumps(line)[1:-1], html.escape(line)}
    return "\n".join(sorted(forms)) + "\n"


def grep_as(user: str | None, patterns: str, paths: list[Path]) -> dict[str, set[str]]:
    """{file: the patterns found in it}, searching every file under `paths` that `user` can
    read (GNU grep, fixed strings, run as `user`: what it cannot read it skips; links are not
    followed). None: as root."""
    argv = (["runuser", "-u", user, "--"] if user else []) + grep_argv(paths)
    done = subprocess.run(
        argv, input=patterns, capture_output=True, text=True, errors="replace", check=False
    )
    return grep_found(done.returncode, done.stdout, done.stderr)


def grep_argv(paths: list[Path]) -> list[str]:
    """GNU grep over `paths`: fixed strings from stdin, recursive, links not followed,
    unreadable files skipped quietly, each match printed as `file:match`."""
    return ["grep", "-r", "-s", "-o", "-a", "-F", "-f", "-", "--", *map(str, paths)]


def grep_found(returncode: int, stdout: str, stderr: str) -> dict[str, set[str]]:
    # 1: nothing found; 2: also some file it could not read (-s keeps those quiet)
    assert returncode in (0, 1, 2) and not stderr.strip(), stderr[-2000:]
    found: dict[str, set[str]] = {}
    for line in stdout.splitlines():
        name, _, match = line.partition(":")
        found.setdefault(name, set()).add(match)
    return found


def readable_secrets(
    user: str, paths: list[Path], search: Callable[..., dict[str, set[str]]] | None = None
) -> dict[str, set[str]]:
    """The secret lines (or their JSON/HTML forms) that `user` can read in files under
    `paths`. Lines that also occur in third-party code (TensorFlow and Keras have
    `weights = model.get_weights()` too) say nothing and are not searched for: those found
    in this checkout's venv's packages, the dlcourse package aside. `search`: how the user's
    grep runs (`grep_as`'s signature; default `grep_as`, through runuser)."""
    lines = secret_lines()
    assert len(lines) > 50, f"too few lines to search for: {len(lines)}"
    site = Path(sys.prefix) / "lib" / f"python{sys.version_info[0]}.{sys.version_info[1]}"
    packages = [p for p in (site / "site-packages").iterdir() if "dlcourse" not in p.name]
    public = set().union(*grep_as(None, patterns(lines), packages).values())
    searched = {s for s in lines if not {s, json.dumps(s)[1:-1], html.escape(s)} & public}
    assert len(searched) > 50, f"too few lines left to search for: {len(searched)}"
    return (search or grep_as)(user, patterns(searched), paths)
