"""Every worksheet through real nbgrader: reference = full marks, blank = 0, every realistic
wrong answer exactly its expected score, every right alternative full marks.

For each worksheet in source/, a throwaway course is generated (generate_assignment), and
submissions are built from the *generated* student version: the reference solution, the blank
release, and the corpus in tests/fixtures/wrong_answers/<worksheet>.py: `STUDENTS` (wrong
answers, as lazy, confused and clever students write them, each with the score of every test
cell it loses) and `RIGHT` (answers right in substance, written differently from the
reference, which must lose nothing). They are graded by the course's parallel autograde
driver; the gradebook must hold exactly the expected score for every graded cell.
"""

from __future__ import annotations

import importlib.util
from pathlib import Path

import pytest
from helpers import REPO, generated_course, submit

from dlcourse.grader import cells
from dlcourse.grader.course import Course
from dlcourse.grader.driver import autograde_all

FIXTURES = Path(__file__).parent / "fixtures" / "wrong_answers"
WORKSHEETS = Course(REPO).assignments()


def corpus(worksheet: str) -> tuple[dict[str, dict], dict[str, dict]]:
    """(wrong answers, right alternatives) of a worksheet."""
    path = FIXTURES / f"{worksheet}.py"
    spec = importlib.util.spec_from_file_location(f"wrong_{worksheet}", path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module.STUDENTS, getattr(module, "RIGHT", {})


@pytest.mark.parametrize("worksheet", WORKSHEETS)
def test_every_worksheet_has_a_corpus_that_covers_it(worksheet):
    wrong, right = corpus(worksheet)
    source = Course(REPO).source_notebooks(worksheet)
    tests = {gid for nb in source.values() for gid in cells.test_ids(nb)}
    assert len(wrong) >= 10, f"{worksheet}: {len(wrong)} wrong answers, want at least 10"
    assert len(right) >= 4, f"{worksheet}: {len(right)} right alternatives, want at least 4"
    caught = {gid for spec in wrong.values() for gid, score in spec["scores"].items()}
    assert tests <= caught, f"{worksheet}: no wrong answer loses {sorted(tests - caught)}"
    assert set(wrong).isdisjoint(right)


def test_there_are_worksheets():
    assert WORKSHEETS, "source/ holds no worksheets"


@pytest.mark.slow
@pytest.mark.parametrize("worksheet", WORKSHEETS)
def test_worksheet_grades_as_expected(worksheet, tmp_path, monkeypatch):
    monkeypatch.delenv("DLCOURSE_EXCHANGE", raising=False)
    course = generated_course(tmp_path / "course", [worksheet])

    release = course.release_notebooks(worksheet)
    source = course.source_notebooks(worksheet)
    assert release.keys() == source.keys()
    reference = {
        gid: text for nb in source.values() for gid, text in cells.reference_answers(nb).items()
    }
    full = {gid: p for nb in source.values() for gid, p in cells.grade_cells(nb).items()}
    total = sum(full.values())
    assert total > 0

    def hand_in(student: str, answers: dict[str, str]) -> None:
        notebooks = {name: cells.answered(nb, answers) for name, nb in release.items()}
        submit(course, worksheet, student, notebooks)

    students, right = corpus(worksheet)
    hand_in("reference", reference)
    hand_in("blank", {})
    expected = {"reference": dict(full), "blank": dict.fromkeys(full, 0.0)}
    for student, spec in students.items():
        assert set(spec["scores"]) <= set(full), f"{student}: unknown test cells"
        assert set(spec["answers"]) <= set(reference), f"{student}: unknown solution cells"
        hand_in(student, reference | spec["answers"])
        expected[student] = full | {gid: float(s) for gid, s in spec["scores"].items()}
    for student, spec in right.items():
        assert set(spec["answers"]) <= set(reference), f"{student}: unknown solution cells"
        hand_in(student, reference | spec["answers"])
        expected[student] = dict(full)

    # The course's own parallel driver: one grading process per student, 2 at a time.
    outcomes = autograde_all(course, worksheet, list(expected), release, workers=2)
    logs = {o.student: course.log(worksheet, o.student).read_text()[-2000:] for o in outcomes}
    assert all(o.ok for o in outcomes), logs
    noted = {o.student: o.notes for o in outcomes if o.notes and o.student in right}
    assert not noted, f"right answers with grading notes: {noted}"

    for student, want in expected.items():
        got = course.scores(worksheet, student)
        assert got == pytest.approx(want), f"{student}: {got} != {want}\n{logs[student]}"
    for student in students:
        got = sum(course.scores(worksheet, student).values())
        assert 0 < got < total, f"{student} should earn partial marks, got {got}/{total}"
