"""`python -m dlcourse roster CSV`: put a class list into the course on a JupyterHub server.

1. checks the CSV (nbgrader's `db student import` format; `id` is the Unix and hub name);
2. with `--unix-users` (as root): creates each missing student's Unix account, home 0700;
3. copies the CSV to `<course>/roster.csv` (the hub reads its students from there), owned by
   the grader account;
4. runs `nbgrader db student import` in the course directory, as the grader account.

Restart the hub afterwards: it puts the roster's students into `nbgrader-<course>`.
"""

from __future__ import annotations

import os
import pwd
import shutil
import subprocess
import sys
from pathlib import Path

from dlcourse import hub


def as_user(user: str | None) -> list[str]:
    """The prefix that runs a command as `user` (nothing when that is who we are)."""
    if not user or pwd.getpwuid(os.geteuid()).pw_name == user:
        return []
    return ["runuser", "-u", user, "--"]


def create_unix_user(name: str) -> bool:
    """A login for a student (no password: the hub's authenticator decides). False when the
    account exists already."""
    try:
        pwd.getpwnam(name)
        return False
    except KeyError:
        pass
    subprocess.run(
        ["useradd", "--create-home", "--user-group", "--shell", "/bin/bash", name], check=True
    )
    os.chmod(pwd.getpwnam(name).pw_dir, 0o700)  # classmates read nothing of each other's
    return True


def install_roster(csv_path: Path, course_dir: Path, grader: str | None) -> Path:
    target = course_dir / "roster.csv"
    shutil.copyfile(csv_path, target)
    target.chmod(0o640)
    if grader and os.geteuid() == 0:
        shutil.chown(target, grader, grader)
    return target


def import_students(roster: Path, course_dir: Path, grader: str | None) -> None:
    cmd = [*as_user(grader), sys.executable, "-m", "nbgrader", "db", "student", "import"]
    subprocess.run([*cmd, str(roster)], cwd=course_dir, check=True)


def command(csv_path: str, course_dir: str | None, grader: str | None, unix_users: bool) -> int:
    config = hub.from_env()
    course = Path(course_dir) if course_dir else config.course_dir
    grader = grader or config.grader
    try:
        students = hub.read_roster(Path(csv_path))
    except (OSError, hub.BadRoster) as err:
        print(err)
        return 2
    if unix_users:
        if os.geteuid() != 0:
            print("--unix-users needs root (useradd)")
            return 2
        created = [name for name in students if create_unix_user(name)]
        print(f"Unix accounts created: {len(created)} ({', '.join(created) or 'none'})")
    roster = install_roster(Path(csv_path), course, grader)
    import_students(roster, course, grader)
    print(f"{len(students)} students in {roster} and in the gradebook; restart the hub.")
    return 0
