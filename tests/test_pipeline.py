"""The whole nbgrader cycle on the demo class, with every student's expected score per cell.

The expectations are written down here, from each scenario's definition and the worksheet's
structure (each test cell checks the answer cell just above it).
"""

from __future__ import annotations

import csv

import nbformat
import pytest
from helpers import REPO, generated_course, submit, tree_hashes, written_points

from dlcourse.demo import pipeline, scenarios
from dlcourse.demo.mistakes import MISTAKES
from dlcourse.grader import cells
from dlcourse.grader.driver import autograde_all
from dlcourse.grader.runner import tool_env

# The demo class runs on one worksheet in the test suite (all of them in `make demo`).
WORKSHEET = "ws01_tensors"
SCENARIOS = scenarios.SCENARIOS


def expected_scores(source_nb) -> dict[str, dict[str, float]]:
    full = cells.grade_cells(source_nb)
    zero = dict.fromkeys(full, 0.0)
    sols = cells.solution_ids(source_nb)

    def losing(*solution_ids: str) -> dict[str, float]:
        lost = {t for s in solution_ids for t in cells.tests_of(source_nb, s)}
        return {gid: (0.0 if gid in lost else p) for gid, p in full.items()}

    wrong = MISTAKES[WORKSHEET]
    return {
        "ada": full,
        "ben": zero,
        "cleo": losing(*sols[(len(sols) + 1) // 2 :]),
        "dev": full | {k: float(v) for k, v in wrong["scores"].items()},
        "eve": losing(sols[0]),
        "finn": losing(sols[-1]),
        "gus": losing(sols[-1]),
        "hana": full,
        "ivan": full,
        "jo": losing(sols[0]),
        "kim": full,
        "leo": zero,
        "mia": full,
    }


EXPECTED_NOTES = {
    "finn": "per-cell time limit",
    "gus": "crashed the kernel",
    "hana": "was deleted; it was restored and graded",
    "ivan": "appeared more than once",
    "jo": "was edited; the original test was used",
    "kim": "graded as",
    "leo": "could not be read",
    "mia": "after the due date (late)",
}


@pytest.fixture(scope="module")
def demo(tmp_path_factory):
    course = tmp_path_factory.mktemp("demo") / "course"
    return pipeline.run(REPO, course, worksheets=[WORKSHEET], workers=2)


@pytest.mark.slow
def test_every_demo_student_scores_exactly_as_expected(demo):
    source = demo.course.source_notebooks(WORKSHEET)
    assert len(source) == 1
    expected = expected_scores(next(iter(source.values())))
    assert set(expected) == set(SCENARIOS)
    for student, want in expected.items():
        got = demo.course.scores(WORKSHEET, student)
        assert got == pytest.approx(want), f"{student}: got {got}, expected {want}"


@pytest.mark.slow
def test_every_repair_is_explained_in_the_feedback(demo):
    outcomes = {o.student: o for o in demo.outcomes[WORKSHEET]}
    assert all(o.ok for o in outcomes.values()), [o.student for o in outcomes.values() if not o.ok]
    pages = {}
    for student in SCENARIOS:
        html = list(demo.course.feedback(student, WORKSHEET).glob("*.html"))
        assert len(html) == 1, f"feedback of {student}: {html}"
        pages[student] = html[0].read_text()
        # Release Feedback hands out the HTML only: the notes are in the page itself.
        assert "Grading notes" in pages[student] and "grading settings" in pages[student]
        others = {p.name for p in html[0].parent.iterdir() if p.suffix != ".html"}
        assert others <= {"timestamp.txt", "submission_secret.txt"}, (student, others)
    for student, phrase in EXPECTED_NOTES.items():
        assert phrase in demo.course.notes(WORKSHEET, student).read_text(), student
        assert phrase in pages[student], student
    assert "About your submission" not in pages["ada"]


@pytest.mark.slow
def test_exports_and_report(demo):
    rows = list(csv.DictReader(demo.grades_csv.open()))
    assert sorted(r["student_id"] for r in rows) == sorted(SCENARIOS)
    by_student = {r["student_id"]: r for r in rows}
    autograded = float(by_student["ada"]["max_score"]) - written_points(demo.course, WORKSHEET)
    assert float(by_student["ada"]["score"]) == autograded > 0
    assert float(by_student["ben"]["score"]) == 0
    inbound = [
        p.name.split("+")[0]
        for p in (demo.course.root / "exchange" / "dlcourse" / "inbound").iterdir()
    ]
    assert sorted(inbound) == sorted(SCENARIOS)  # every student submitted
    for student in SCENARIOS:  # ... after fetching the release from the exchange
        assert (demo.course.root / "students" / student / WORKSHEET).is_dir()
    report = demo.reports[0].read_text()
    assert (demo.reports[0].parent / f"{WORKSHEET}-histogram.png").stat().st_size > 1000
    assert "## Submissions that need attention" in report
    # dev's loop over the channels earns 2 of test_normalize_images' 3 points (partial credit):
    # grades.csv has the fraction and the per-question table counts one partial score.
    assert float(by_student["dev"]["score"]) == autograded - 2 - 1
    (row,) = [line for line in report.splitlines() if "| test\\_normalize\\_images |" in line]
    assert row.split("|")[-3].strip() == "1", row  # columns ... | full | partial | zero |
    # Written answers score nothing until graded by hand, and the report says so.
    rows = {line.split(" | ")[0]: line for line in report.splitlines() if line.startswith("| ")}
    assert "needs manual grading" in rows["| ada"]  # answered: a grader must read it
    assert "needs manual grading" not in rows["| ben"]  # blank: 0 without a grader
    for student in EXPECTED_NOTES:
        assert f"- **{student}**" in report


@pytest.mark.slow
def test_submissions_are_never_modified(demo):
    submitted = demo.course.submitted()
    leo = next((submitted / "leo" / WORKSHEET).glob("*.ipynb"))
    with pytest.raises(Exception):  # noqa: B017 - still the broken file the student sent
        nbformat.read(leo, as_version=4)
    kim = [p.name for p in (submitted / "kim" / WORKSHEET).glob("*.ipynb")]
    assert kim == [f"{WORKSHEET}-Copy1.ipynb"]


@pytest.mark.slow
def test_regrading_is_identical_and_keeps_manual_grades(demo):
    from nbgrader.api import Gradebook

    course = demo.course
    students = ["ada", "cleo", "leo"]
    before = {s: course.scores(WORKSHEET, s) for s in students}
    submitted = tree_hashes(course.submitted())
    with Gradebook(course.db_url) as gb:
        grade = gb.find_submission(WORKSHEET, "cleo").notebooks[0].grades[0]
        grade.manual_score = 0.5
        # A written answer graded by hand (dlcourse/grader/written.py).
        (answer,) = [
            g
            for g in gb.find_submission(WORKSHEET, "ada").notebooks[0].grades
            if g.cell.cell_type == "markdown"
        ]
        answer.manual_score = 1.5
        gb.db.commit()
        name, n_students = grade.name, len(gb.students)
    backups = len(list(course.backups.glob("*.db")))

    release = course.release_notebooks(WORKSHEET)
    outcomes = autograde_all(course, WORKSHEET, students, release, workers=2)
    assert all(o.ok for o in outcomes)

    after = {s: course.scores(WORKSHEET, s) for s in students}
    before["cleo"][name] = 0.5  # the manual grade wins over the autograde score
    assert after == before
    assert set(course.manual_scores(WORKSHEET, "ada").values()) == {1.5}
    assert tree_hashes(course.submitted()) == submitted
    assert len(list(course.backups.glob("*.db"))) == backups + 1
    with Gradebook(course.db_url) as gb:
        assert len(gb.students) == n_students
        assert len(gb.find_assignment(WORKSHEET).submissions) == len(SCENARIOS)


@pytest.mark.slow
def test_autograde_command_grades_a_collected_class(tmp_path):
    import subprocess
    import sys

    course = generated_course(tmp_path / "course", [WORKSHEET])
    release = course.release_notebooks(WORKSHEET)
    source = course.source_notebooks(WORKSHEET)
    reference = {k: v for nb in source.values() for k, v in cells.reference_answers(nb).items()}
    answered = {name: cells.answered(nb, reference) for name, nb in release.items()}
    submit(course, WORKSHEET, "ada", answered)
    submit(course, WORKSHEET, "ben", release)

    command = [sys.executable, "-m", "dlcourse", "autograde", WORKSHEET]
    command += ["--course", str(course.root)]
    result = subprocess.run(
        [*command, "--workers", "2"], env=tool_env(), capture_output=True, text=True, check=False
    )
    assert result.returncode == 0, result.stdout + result.stderr
    rows = {r["student_id"]: r for r in csv.DictReader(course.grades_csv.open())}
    autograded = float(rows["ada"]["max_score"]) - written_points(course, WORKSHEET)
    assert float(rows["ada"]["score"]) == autograded > 0
    assert float(rows["ben"]["score"]) == 0
    assert (course.reports / f"{WORKSHEET}.md").is_file()
    assert list(course.feedback("ada", WORKSHEET).glob("*.html"))

    empty = pipeline.new_course(tmp_path / "empty", REPO, [WORKSHEET]).root
    result = subprocess.run(
        [*command[:-1], str(empty)], env=tool_env(), capture_output=True, text=True, check=False
    )
    assert result.returncode == 2 and "generate_assignment" in result.stdout
