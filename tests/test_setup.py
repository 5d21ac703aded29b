"""The set-up behind README's two commands: Debian packages and the course's kernel spec.

Real runs of deploy/system-packages (the one list of Debian packages) on this machine, as
root and as an unprivileged user, and `make -n` for what each README command would run.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
from pathlib import Path

import pytest

from dlcourse import kernel_env

REPO = Path(__file__).resolve().parent.parent
SCRIPT = REPO / "deploy" / "system-packages"


def run(argv, **kw):
    return subprocess.run(argv, cwd=REPO, capture_output=True, text=True, check=False, **kw)


def test_bad_arguments_are_refused():
    for args in ([], ["everything"], ["grader; rm -rf /"]):
        done = run([str(SCRIPT), *args])
        assert done.returncode == 2 and "usage" in done.stderr, args


def test_make_test_installs_all_make_demo_only_the_grader_packages():
    demo = run(["make", "-n", "demo"]).stdout
    test = run(["make", "-n", "test"]).stdout
    assert "deploy/system-packages grader" in demo and "chromium" not in demo
    assert "deploy/system-packages test" in test
    # CI relies on the Makefile: no second list of packages that could drift.
    ci = (REPO / ".ci" / "run").read_text()
    assert "apt-get" not in ci and "make test" in ci


@pytest.mark.skipif(shutil.which("apt-get") is None, reason="not a Debian machine")
def test_nothing_missing_needs_no_rights_and_says_nothing():
    # Everything installed (make test installed it): a no-op, even for a user without sudo.
    assert Path("/usr/bin/bwrap").exists() and Path("/usr/bin/chromium").exists()
    assert list(Path("/usr/lib/postgresql").glob("*/bin/initdb")), "Debian's PostgreSQL"
    done = run([str(SCRIPT), "test"])
    assert (done.returncode, done.stdout, done.stderr) == (0, "", "")
    if os.geteuid() == 0 and shutil.which("setpriv"):
        done = run(
            ["setpriv", "--reuid=65534", "--regid=65534", "--clear-groups", str(SCRIPT), "test"]
        )
        assert (done.returncode, done.stdout) == (0, ""), done.stderr


def test_setup_wrote_the_course_kernel_spec():
    spec = json.loads(kernel_env.kernel_spec_path().read_text())
    assert kernel_env.EXTENSION_ARG in spec["argv"]
    assert spec["env"]["TF_CPP_MIN_LOG_LEVEL"] == "2"
