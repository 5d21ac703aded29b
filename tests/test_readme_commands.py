"""README's instructor commands, exactly as README shows them, in a throwaway course copy.

The commands are parsed from README's fenced ```bash blocks under "## For instructors", so the
README and this test cannot drift. They run from the copy's root the way README says: no
activated venv (PATH holds only /usr/bin:/bin), `.venv/bin/...` relative to the root. One
simulated student fetches and submits between release and collect, so that collect,
autograde and feedback have work to do.
"""

from __future__ import annotations

import os
import pwd
import re
import shlex
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from dlcourse import data

REPO = Path(__file__).resolve().parent.parent
README = REPO / "README.md"
STUDENT = str(REPO / "deploy" / "student")
pytestmark = pytest.mark.slow


def section(text: str, title: str) -> str:
    start = text.index(f"\n## {title}\n")
    end = text.find("\n## ", start + 1)
    return text[start : end if end != -1 else None]


def instructor_commands() -> list[str]:
    text = section(README.read_text(), "For instructors")
    commands = []
    for block in re.findall(r"```bash\n(.*?)```", text, re.S):
        for line in block.splitlines():
            line = line.split(" #", 1)[0].strip()
            if line and not line.startswith("#"):
                commands.append(line)
    return commands


def test_readme_shows_the_cycle_from_the_repo_root():
    commands = instructor_commands()
    assert commands, "no ```bash blocks under README's '## For instructors'"
    assert commands[0].startswith(".venv/bin/nbgrader generate_assignment"), commands
    for command in commands:
        assert command.startswith(".venv/bin/"), f"not runnable from the root as is: {command}"


def test_readme_instructor_commands_run_as_written(tmp_path):
    course = tmp_path / "course"
    course.mkdir()
    shutil.copy(REPO / "nbgrader_config.py", course)
    for name in ("source", "release"):
        shutil.copytree(REPO / name, course / name)
    (course / ".venv").symlink_to(Path(sys.prefix))  # README's .venv, not an activated one
    env = {
        "PATH": "/usr/bin:/bin",  # careless case: nothing from the venv on PATH
        "HOME": str(tmp_path / "home"),
        "LANG": "C.UTF-8",
        "DLCOURSE_EXCHANGE": str(tmp_path / "exchange"),
        "DLCOURSE_QUICK": "1",
        "PYTHONHASHSEED": "0",
    }
    for key in ("DLCOURSE_DATA", "DLCOURSE_SANDBOX"):
        if key in os.environ:
            env[key] = os.environ[key]
    # The copy lives in a temporary folder, away from the data beside the repo: say where the
    # data sets are, as an instructor whose course is elsewhere does.
    env.setdefault("DLCOURSE_DATA", str(data.course_data_dir()))
    commands = instructor_commands()
    worksheet = shlex.split(commands[0])[2]
    assert (course / "source" / worksheet).is_dir(), worksheet

    def run(argv, cwd, extra=None):
        done = subprocess.run(
            argv,
            cwd=cwd,
            env=env | (extra or {}),
            capture_output=True,
            text=True,
            timeout=900,
            check=False,
        )
        assert done.returncode == 0, f"{argv} failed ({done.returncode}):\n{done.stderr[-4000:]}"

    student = tmp_path / "student"
    student.mkdir()
    nbgrader = [str(course / ".venv" / "bin" / "nbgrader")]
    for command in commands:
        if shlex.split(command)[1:2] == ["collect"]:  # a student, with the student config
            for step in ("fetch_assignment", "submit"):
                run([*nbgrader, step, worksheet], student, {"JUPYTER_CONFIG_PATH": STUDENT})
        run(shlex.split(command), course)
        if "generate_assignment" in command:
            assert sorted((course / "release" / worksheet).glob("*.ipynb")), command

    me = pwd.getpwuid(os.getuid()).pw_name  # the local exchange's student id
    assert sorted((course / "autograded" / me / worksheet).glob("*.ipynb"))
    assert sorted((course / "feedback" / me / worksheet).glob("*.html"))
    rows = (course / "grades.csv").read_text().splitlines()
    assert any(row.startswith(f"{worksheet},") and f",{me}," in row for row in rows), rows


def hub_blocks() -> list[list[str]]:
    """README's ```bash blocks under "## Running the course for a class", as the commands a
    root shell runs (comments dropped, continuation lines joined)."""
    text = section(README.read_text(), "Running the course for a class")
    blocks = []
    for block in re.findall(r"```bash\n(.*?)```", text, re.S):
        joined = block.replace("\\\n", " ")
        lines = [line.split(" #", 1)[0].strip() for line in joined.splitlines()]
        blocks.append([line for line in lines if line and not line.startswith("#")])
    return blocks


def install_default(name: str) -> str:
    """install-hub.sh's default for `name` (`VAR=${NAME:-default}`)."""
    script = (REPO / "deploy" / "jupyterhub" / "install-hub.sh").read_text()
    found = re.search(rf"\$\{{{name}:-([^}}]+)\}}", script)
    assert found, f"install-hub.sh has no default for {name}"
    return found.group(1)


def test_readme_hub_steps_are_the_installs(tmp_path):
    """The hub steps on an empty server, in README's order, name what the install really is:
    the script tests/test_hub.py runs, its venv and config paths, the commands' own options.
    (Run as written, end to end, on a debootstrap'd Debian 12 with none of the packages: see
    the closing notes; test_hub runs install-hub.sh and the roster command on every CI run.)"""
    from dlcourse import hub

    install, grade = hub_blocks()
    for block in (install, grade):
        script = tmp_path / "block.sh"
        script.write_text("\n".join(block) + "\n")
        assert subprocess.run(["bash", "-n", str(script)], check=False).returncode == 0, block
    env_dir = install_default("DLCOURSE_HUB_ENV")
    python = f"{env_dir}/bin/python -m dlcourse"
    clone = "/opt/dlcourse"
    heads = [
        "apt-get update && apt-get install -y",  # git on a minimal server, before the clone
        f"install -d -m 0700 {clone} && git clone ",
        "export DLCOURSE_HUB_STAFF=",
        f"{clone}/deploy/jupyterhub/install-hub.sh",
        f"{python} data install ",
        f"{python} roster ",
        "chpasswd < ",
        f"{env_dir}/bin/jupyterhub -f {env_dir}/share/dlcourse/deploy/jupyterhub/"
        "jupyterhub_config.py",
    ]
    assert len(install) == len(heads), install
    for line, head in zip(install, heads, strict=True):
        assert line.startswith(head), (line, head)
    # apt only for what the clone needs; the rest of the system packages are install-hub.sh's
    # (deploy/system-packages, the one list), and nothing comes from a checkout's .venv or make.
    packages = install[0].split("apt-get install", 1)[1].split()
    assert {p for p in packages if not p.startswith("-")} == {"git", "ca-certificates"}
    assert not any(".venv/" in c or c.startswith("make ") for c in install), install
    script = (REPO / "deploy" / "jupyterhub" / "install-hub.sh").read_text()
    assert '"$SRC/deploy/system-packages" hub' in script
    assert 'config="$ENV_DIR/share/dlcourse/deploy/jupyterhub/jupyterhub_config.py"' in script
    exported = dict(kv.split("=", 1) for kv in install[2].split()[1:])
    assert exported["DLCOURSE_DATA"] in install[4].split(), "data installed where the hub looks"
    assert "--unix-users" in install[5].split()

    # The options README uses exist, as the installed command parses them.
    for argv, options in (
        (["data", "install", "--help"], ("--from", "--url")),
        (["roster", "--help"], ("--unix-users",)),
        (["autograde", "--help"], ("--course",)),
    ):
        done = subprocess.run(
            [sys.executable, "-m", "dlcourse", *argv], capture_output=True, text=True, check=False
        )
        assert done.returncode == 0, done.stderr
        for option in options:
            assert option in done.stdout, (argv, option)

    # The driver as the grader account, with the install's defaults.
    defaults = hub.from_env({})
    (command,) = grade
    words = command.split()
    assert words[:3] == ["runuser", "-u", defaults.grader], words
    assert f"DLCOURSE_EXCHANGE={defaults.exchange}" in words
    assert f"DLCOURSE_DATA={exported['DLCOURSE_DATA']}" in words
    assert words[words.index("--course") + 1] == str(defaults.course_dir)
    assert f"{env_dir}/bin/python" in words
