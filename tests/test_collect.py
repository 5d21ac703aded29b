"""Collect never lets one student's entry in the exchange replace another's, and never
follows a link as the collecting user."""

from __future__ import annotations

import os

import nbformat
import pytest
from helpers import generated_course

from dlcourse.grader.runner import nbgrader

WORKSHEET = "ws01_tensors"
EARLY, LATE = "2030-01-01 10:00:00.000000 UTC", "2030-01-01 11:00:00.000000 UTC"
STRANGER_UID = 4242  # no such user: a file owned by some other account


@pytest.mark.slow
def test_collect_refuses_forged_and_linked_entries(tmp_path):
    course = generated_course(tmp_path / "course", [WORKSHEET])
    ((name, release_nb),) = course.release_notebooks(WORKSHEET).items()
    inbound = tmp_path / "exchange" / course.course_id / "inbound"
    inbound.mkdir(parents=True)

    def entry(student: str, when: str, text: str) -> os.PathLike:
        folder = inbound / f"{student}+{WORKSHEET}+{when}+{student}{len(text)}"
        folder.mkdir()
        nb = nbformat.v4.new_notebook()
        nb.cells = [nbformat.v4.new_markdown_cell(text)]
        nbformat.write(nb, folder / f"{name}.ipynb")
        (folder / "timestamp.txt").write_text(when)
        return folder

    entry("ada", EARLY, "ada's own work")
    entry("bob", EARLY, "bob's own work")
    forged = entry("bob", LATE, "eve's forgery in bob's name")
    for path in [forged, *forged.iterdir()]:
        os.chown(path, STRANGER_UID, STRANGER_UID)
    (inbound / f"cat+{WORKSHEET}+{EARLY}+cat").symlink_to(inbound / os.listdir(inbound)[0])
    dan = entry("dan", EARLY, "dan")
    (dan / f"{name}.ipynb").unlink()
    (dan / f"{name}.ipynb").symlink_to("/etc/shadow")

    result = nbgrader(
        course.root, "collect", WORKSHEET, f"--Exchange.root={tmp_path / 'exchange'}", check=False
    )
    log = result.stdout + result.stderr
    assert result.ok, log
    collected = sorted(p.name for p in course.submitted().iterdir())
    assert collected == ["ada", "bob", "dan"], log
    bob = (course.submitted("bob", WORKSHEET) / f"{name}.ipynb").read_text()
    assert "bob's own work" in bob and "forgery" not in bob
    assert "Not collected" in log and "owned by" in log and "link or not a folder" in log
    shadow = course.submitted("dan", WORKSHEET) / f"{name}.ipynb"
    assert shadow.is_symlink(), "a link inside a submission was followed"
