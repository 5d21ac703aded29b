"""Collect never lets one student's entry in the exchange replace another's, never follows a
link as the collecting user (not even one swapped in while it copies), decides lateness from
what the student cannot set, and never drops a notebook silently; grading refuses a notebook
with the master copy's content, whichever door stages it."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

import nbformat
import pytest
from helpers import REPO, generated_course, lab_env, written_points
from servers import get, running_lab

from dlcourse import data
from dlcourse.grader import cells, intake
from dlcourse.grader.course import Course
from dlcourse.grader.exchange import NBGRADER_TIME, StrictCollect
from dlcourse.grader.runner import nbgrader

WORKSHEET = "ws01_tensors"
EARLY, LATE = "2030-01-01 10:00:00.000000 UTC", "2030-01-01 11:00:00.000000 UTC"
STRANGER_UID = 4242  # no such user: a file owned by some other account
MASTER_ONLY = "BEGIN SOLUTION"  # in every master notebook, in no release
ARTIFACTS = REPO / "artifacts" / "collect"


def inbound_of(exchange: Path, course: Course) -> Path:
    inbound = exchange / course.course_id / "inbound"
    inbound.mkdir(parents=True, exist_ok=True)
    return inbound


def entry(inbound: Path, student: str, when: str | None, notebooks: dict, tag: str = "") -> Path:
    """An inbound entry as `nbgrader submit` writes it; `when` None: no timestamp.txt."""
    stamp = when or datetime.now(UTC).strftime(NBGRADER_TIME)
    folder = inbound / f"{student}+{WORKSHEET}+{stamp}+{student}{tag}"
    folder.mkdir()
    for name, nb in notebooks.items():
        nbformat.write(nb, folder / f"{name}.ipynb")
    if when is not None:
        (folder / "timestamp.txt").write_text(when)
    return folder


def note_cell(text: str) -> nbformat.NotebookNode:
    nb = nbformat.v4.new_notebook()
    nb.cells = [nbformat.v4.new_markdown_cell(text)]
    return nb


@pytest.mark.slow
def test_collect_refuses_forged_linked_and_special_entries(tmp_path):
    course = generated_course(tmp_path / "course", [WORKSHEET])
    (name,) = course.release_notebooks(WORKSHEET)
    inbound = inbound_of(tmp_path / "exchange", course)
    entry(inbound, "ada", EARLY, {name: note_cell("ada's own work")})
    entry(inbound, "bob", EARLY, {name: note_cell("bob's own work")})
    forged = entry(inbound, "bob", LATE, {name: note_cell("eve's forgery in bob's name")})
    for path in [forged, *forged.iterdir()]:
        os.chown(path, STRANGER_UID, STRANGER_UID)
    (inbound / f"cat+{WORKSHEET}+{EARLY}+cat").symlink_to(inbound / os.listdir(inbound)[0])
    dan = entry(inbound, "dan", EARLY, {name: note_cell("dan")})
    (dan / f"{name}.ipynb").unlink()
    (dan / f"{name}.ipynb").symlink_to("/etc/shadow")
    os.mkfifo(dan / "pipe")  # nbgrader's copy stops the whole collect on a FIFO
    (dan / "sub").symlink_to(course.source(WORKSHEET), target_is_directory=True)

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
    dan_copy = course.submitted("dan", WORKSHEET)
    assert sorted(p.name for p in dan_copy.iterdir()) == ["timestamp.txt"], log
    notes = intake.load_record(course, WORKSHEET)["students"]["dan"]["notes"]
    assert any(f"'{name}.ipynb' is a link" in n for n in notes), notes
    assert any("'pipe' is a FIFO" in n for n in notes) and any(
        "'sub' is a link" in n for n in notes
    )
    assert "FIFO" in log  # the instructor sees it in the collect log too


ATTACKER = r"""
import os, shutil, sys
entry, name, master, own, master_dir, stop = sys.argv[1:]
notebook, sub, aside = os.path.join(entry, name), os.path.join(entry, "sub"), entry + ".aside"
while not os.path.exists(stop):
    # the master notebook swapped in for the student's own, and back
    os.symlink(master, notebook + ".link"); os.rename(notebook + ".link", notebook)
    shutil.copyfile(own, notebook + ".own"); os.rename(notebook + ".own", notebook)
    # a folder of the submission swapped for a link to the master's folder, and back
    os.rename(sub, sub + ".dir"); os.symlink(master_dir, sub)
    os.unlink(sub); os.rename(sub + ".dir", sub)
    # the entry itself swapped for a link to the master's folder, and back
    os.rename(entry, aside); os.symlink(master_dir, entry)
    os.unlink(entry); os.rename(aside, entry)
"""


@pytest.mark.slow
def test_a_link_swapped_in_while_collect_copies_is_never_followed(tmp_path):
    course = generated_course(tmp_path / "course", [WORKSHEET])
    (name,) = course.release_notebooks(WORKSHEET)
    master = course.source(WORKSHEET) / f"{name}.ipynb"
    assert MASTER_ONLY in master.read_text()
    exchange = tmp_path / "exchange"
    own = note_cell("eve's own work")
    folder = entry(inbound_of(exchange, course), "eve", EARLY, {name: own})
    (folder / "sub").mkdir()
    nbformat.write(own, folder / "sub" / "notes.ipynb")
    nbformat.write(own, tmp_path / "own.ipynb")
    stop = tmp_path / "stop"
    args = [folder, f"{name}.ipynb", master, tmp_path / "own.ipynb", master.parent, stop]
    attacker = subprocess.Popen([sys.executable, "-c", ATTACKER, *map(str, args)])
    seen: dict[str, int] = {"own work": 0}

    def check_collected() -> None:
        copy = course.submitted("eve", WORKSHEET)
        for path in copy.rglob("*") if copy.is_dir() else []:
            assert not path.is_symlink(), f"a link was collected: {path}"
            if path.is_file():
                assert MASTER_ONLY not in path.read_text(errors="replace"), f"master in {path}"
                seen["own work"] += "eve's own work" in path.read_text(errors="replace")

    coursedir = course.coursedir
    coursedir.assignment_id = WORKSHEET
    try:
        deadline = time.monotonic() + 8
        runs = 0
        while time.monotonic() < deadline or runs < 20:
            StrictCollect(coursedir=coursedir, config=course.config, root=str(exchange)).start()
            check_collected()
            subprocess.run(["rm", "-rf", str(course.submitted("eve"))], check=True)
            runs += 1
        result = nbgrader(course.root, "collect", WORKSHEET, f"--Exchange.root={exchange}")
        assert result.ok, result.stdout + result.stderr
        check_collected()
    finally:
        stop.touch()
        attacker.wait(timeout=30)
    assert attacker.returncode == 0, "the attacker stopped early: the race was not run"
    assert seen["own work"] > 0, "the student's own work was never collected"


def with_output(nb: nbformat.NotebookNode, megabytes: float) -> nbformat.NotebookNode:
    """The notebook with a plot-sized output (base64 text) of about `megabytes` MB."""
    nb = nbformat.from_dict(json.loads(json.dumps(nb)))
    code = next(c for c in nb.cells if c.cell_type == "code")
    png = ("iVBORw0KGgo" * int(megabytes * 1e6 / 11 + 1))[: int(megabytes * 1e6)]
    code.outputs = [nbformat.v4.new_output("display_data", data={"image/png": png})]
    return nb


@pytest.mark.slow
def test_lateness_size_and_master_content_through_the_driver_and_the_formgrader(tmp_path):
    if data.course_data_dir() is None:
        pytest.skip("the course's data sets are not on this machine")
    exchange = tmp_path / "exchange"
    env = lab_env(tmp_path)
    course = generated_course(tmp_path / "course", [WORKSHEET])
    ((name, release_nb),) = course.release_notebooks(WORKSHEET).items()
    (master,) = course.source_notebooks(WORKSHEET).values()
    full = cells.answered(release_nb, cells.reference_answers(master))
    due = datetime.now(UTC) - timedelta(minutes=30)
    nbgrader(
        course.root, "db", "assignment", "add", WORKSHEET, f"--duedate={due:%Y-%m-%d %H:%M:%S} UTC"
    )
    inbound = inbound_of(exchange, course)
    backdated = (due - timedelta(hours=1)).strftime(NBGRADER_TIME)
    # bea: written now, after the due date, with a timestamp (and entry name) before it; a
    # 6 MB notebook of plots (over nbgrader's 5 MB default, under the course's limit).
    entry(inbound, "bea", backdated, {name: with_output(full, 6)})
    # fay: no timestamp at all, and a notebook over the course's limit.
    limit = 1000 * course.coursedir.max_file_size
    entry(inbound, "fay", None, {name: with_output(full, limit / 1e6 + 1)})
    result = nbgrader(course.root, "collect", WORKSHEET, f"--Exchange.root={exchange}")
    log = result.stdout + result.stderr
    assert "no timestamp" in log and "earlier than the time the grader saw" in log, log
    assert "over the" in log and "limit for one submitted file" in log, log
    # gus: the master copy itself, put into submitted/ by hand.
    gus = course.submitted("gus", WORKSHEET)
    gus.mkdir(parents=True)
    nbformat.write(master, gus / f"{name}.ipynb")

    command = [sys.executable, "-m", "dlcourse", "autograde", WORKSHEET, "--course"]
    graded = subprocess.run(
        [*command, str(course.root)], env=env, capture_output=True, text=True, check=False
    )
    said = graded.stdout[-3000:] + graded.stderr[-3000:]
    assert graded.returncode in (0, 1), said

    def notes(student: str) -> str:
        path = course.notes(WORKSHEET, student)
        return path.read_text() if path.is_file() else ""

    with course.gradebook() as gb:
        late = {s: gb.find_submission(WORKSHEET, s).total_seconds_late for s in ("bea", "fay")}
        scores = {s: gb.find_submission(WORKSHEET, s).score for s in ("bea", "fay", "gus")}
        top = gb.find_submission(WORKSHEET, "bea").max_score - written_points(course, WORKSHEET)
    # Lateness from what the student cannot set: bea's claim is before the due date.
    assert late["bea"] >= 25 * 60 and late["fay"] >= 25 * 60, late
    assert "earlier than the time the grader saw it last change" in notes("bea")
    assert "after the due date (late)" in notes("bea")
    assert "no timestamp.txt" in notes("fay")
    # Size: one limit; a plot-heavy notebook is graded, one over the limit is refused, noted.
    assert scores["bea"] == top > 0, scores
    assert "missing" not in notes("bea")
    assert "limit for one submitted file" in notes("fay") and scores["fay"] == 0
    # The master copy is refused, graded as unanswered.
    assert scores["gus"] == 0 and "content only the instructors' copy has" in notes("gus")
    report = (course.reports / f"{WORKSHEET}.md").read_text()
    for phrase in ("limit for one submitted file", "no timestamp", "only the instructors"):
        assert phrase in report, phrase
    feedback = (course.feedback("fay", WORKSHEET) / f"{name}.html").read_text()
    assert "limit for one submitted file" in feedback and "no timestamp" in feedback

    # The formgrader's button, same path: the master with its markers taken out by hand.
    stripped = nbformat.from_dict(json.loads(json.dumps(master)))
    for cell in stripped.cells:
        lines = cell.source.splitlines()
        cell.source = "\n".join(ln for ln in lines if "### BEGIN" not in ln and "### END" not in ln)
    nbformat.write(stripped, gus / f"{name}.ipynb")
    course.notes(WORKSHEET, "gus").unlink()
    url = f"/formgrader/api/submission/{WORKSHEET}/gus/autograde"
    with running_lab(course.root, course.root, env, tmp_path / "lab.log", ARTIFACTS) as lab:
        base, token = lab
        answer = json.loads(get(base + url, token, timeout=600, method="POST"))
    assert answer["success"], answer.get("error", "")[-3000:]
    assert "the text of the master copy's hidden tests" in notes("gus")
    with course.gradebook() as gb:
        assert gb.find_submission(WORKSHEET, "gus").score == 0
