"""A student's `nbgrader submit` with the student configuration (deploy/student): JupyterLab's
checkpoints are neither submitted nor reported as extra notebooks; a real extra notebook
still is."""

from __future__ import annotations

import os
import shutil
import sys
from pathlib import Path

import pytest
from helpers import plain_nbgrader

REPO = Path(__file__).resolve().parent.parent
WORKSHEET = "ws01_tensors"


@pytest.mark.slow
def test_checkpoints_are_not_submitted_nor_called_extra(tmp_path):
    exchange = tmp_path / "exchange"
    outbound = exchange / "dlcourse" / "outbound" / WORKSHEET
    shutil.copytree(REPO / "release" / WORKSHEET, outbound)
    (exchange / "dlcourse" / "inbound").mkdir()
    os.chmod(exchange / "dlcourse" / "inbound", 0o1777)
    work = tmp_path / "student" / WORKSHEET
    shutil.copytree(outbound, work)
    checkpoints = work / ".ipynb_checkpoints"
    checkpoints.mkdir()
    shutil.copy(work / f"{WORKSHEET}.ipynb", checkpoints / f"{WORKSHEET}-checkpoint.ipynb")
    env = {
        "PATH": f"{Path(sys.executable).parent}{os.pathsep}/usr/bin:/bin",
        "HOME": str(tmp_path / "home"),
        "JUPYTER_CONFIG_PATH": str(REPO / "deploy" / "student"),
        "DLCOURSE_EXCHANGE": str(exchange),
    }

    def submit() -> str:
        done = plain_nbgrader(work.parent, env, "submit", WORKSHEET)
        assert done.returncode == 0, done.stderr[-3000:]
        return done.stdout + done.stderr

    said = submit()
    assert "EXTRA" not in said and "-checkpoint.ipynb" not in said, said
    (entry,) = (exchange / "dlcourse" / "inbound").iterdir()
    assert (entry / f"{WORKSHEET}.ipynb").is_file()
    assert not (entry / ".ipynb_checkpoints").exists()

    shutil.copy(work / f"{WORKSHEET}.ipynb", work / "scratch.ipynb")
    said = submit()
    assert "scratch.ipynb: EXTRA" in said and "-checkpoint.ipynb" not in said, said
