"""Every worksheet through real nbgrader: reference = full marks, blank = 0, every realistic
wrong answer exactly its expected score, every right alternative full marks.

For each worksheet in source/, a throwaway course is generated (generate_assignment), and
submissions are built from the *generated* student version: the reference solution, the blank
release, and the corpus in tests/fixtures/wrong_answers/<worksheet>.py: `STUDENTS` (wrong
answers, as lazy, confused and clever students write them, each with the score of every test
cell it loses) and `RIGHT` (answers right in substance, written differently from the
reference, which must lose nothing). They are graded by the course's parallel autograde
driver; the gradebook must hold exactly the expected score for every graded cell.

Each student in the class stands for several corpus answers at once: answers that change
different solution cells and lose different test cells are handed in together (`packs`),
which grades the corpus with less than half of the kernels (each imports TensorFlow). The
tests of one exercise never depend on another exercise's answer (issue 13), so each answer's
own losses still show cell by cell, and a mismatch names the answers that own the cell. What
packing could not see is an answer damaging a test its packmate loses anyway, so an answer
whose cell does more than import and define (a statement at the top level, `global`, an
IPython hook) is handed in alone, and no wrong answer may claim a loss in another exercise's
tests (checked statically). DLCOURSE_CORPUS_ALONE=1 hands in every answer alone.
"""

from __future__ import annotations

import ast
import importlib.util
import os
from pathlib import Path

import pytest
from helpers import REPO, generated_course, submit

from dlcourse.grader import cells
from dlcourse.grader.course import Course
from dlcourse.grader.driver import autograde_all

FIXTURES = Path(__file__).parent / "fixtures" / "wrong_answers"
WORKSHEETS = Course(REPO).assignments()
ALONE = os.environ.get("DLCOURSE_CORPUS_ALONE") == "1"


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
    full = {gid: p for nb in source.values() for gid, p in cells.grade_cells(nb).items()}
    answers = {gid for nb in source.values() for gid in cells.reference_answers(nb)}
    for student, spec in (wrong | right).items():
        assert set(spec["answers"]) <= answers, f"{student}: unknown solution cells"
    for student, spec in wrong.items():
        assert set(spec["scores"]) <= set(full), f"{student}: unknown test cells"
        kept = sum((full | spec["scores"]).values())
        assert 0 < kept < sum(full.values()), f"{student} should earn partial marks, not {kept}"
        # A wrong answer loses only tests of the exercises it answers: never another's.
        own = {t for nb in source.values() for a in spec["answers"] for t in cells.tests_of(nb, a)}
        assert set(spec["scores"]) <= own, f"{student} loses tests of other exercises"


def packs(entries: dict[str, dict], alone: bool = False) -> list[list[str]]:
    """Corpus answers grouped so that no two in a group change the same solution cell or lose
    the same test cell (first fit, largest first). An answer that could reach beyond its own
    exercise (`only_defines`) is handed in alone, as is every answer when `alone`."""
    groups: list[tuple[set[str], list[str]]] = []
    singles: list[list[str]] = []  # never joined by another answer
    for name, spec in sorted(entries.items(), key=lambda kv: (-len(touched(kv[1])), kv[0])):
        if alone or not only_defines(spec):
            singles.append([name])
            continue
        cells_ = touched(spec)
        group = next((g for g in groups if g[0].isdisjoint(cells_)), None)
        if group is None:
            groups.append((set(cells_), [name]))
        else:
            group[0].update(cells_)
            group[1].append(name)
    return [names for _, names in groups] + singles


def touched(spec: dict) -> set[str]:
    return set(spec["answers"]) | set(spec.get("scores", {}))


DEFINITIONS = (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef, ast.Import, ast.ImportFrom)


def only_defines(spec: dict) -> bool:
    """Every answer cell only imports and defines (no statement at the top level that changes
    state when the cell runs, no `global`, no IPython hooks): it cannot touch a packmate's
    exercise. Anything else, or code that does not parse, is graded alone."""
    for source in spec["answers"].values():
        try:
            tree = ast.parse(source)
        except SyntaxError:
            return False
        for node in tree.body:
            docstring = isinstance(node, ast.Expr) and isinstance(node.value, ast.Constant)
            if not (isinstance(node, DEFINITIONS) or docstring):
                return False
        for node in ast.walk(tree):
            if isinstance(node, ast.Global | ast.Nonlocal):
                return False
            if isinstance(node, ast.Name) and node.id == "get_ipython":
                return False
    return True


def test_packs_never_share_a_cell_nor_take_answers_that_reach_further():
    f = "import numpy as np\n\n\ndef f(x):\n    return np.abs(x)\n"
    entries = {
        "a": {"answers": {"ex_1": f}, "scores": {"test_1": 0}},
        "b": {"answers": {"ex_1": f}, "scores": {"test_1": 0}},
        "c": {"answers": {"ex_2": f}, "scores": {"test_1": 0}},
        "d": {"answers": {"ex_2": f, "ex_3": f}, "scores": {"test_2": 0, "test_3": 1}},
        "e": {"answers": {"ex_4": f}},
        "seeds": {  # sorted first (most cells): nothing may join it
            "answers": {"ex_5": "np.random.seed(0)\n" + f, "ex_9": f},
            "scores": {"test_5": 0, "test_9": 0},
        },
        "hooks": {"answers": {"ex_6": f + "    get_ipython()\n"}},
        "rebinds": {"answers": {"ex_7": "def f():\n    global np\n    np = None\n"}},
        "broken": {"answers": {"ex_8": "def f(:\n"}},
    }
    groups = packs(entries)
    assert sorted(n for g in groups for n in g) == sorted(entries)
    for group in groups:
        for i, first in enumerate(group):
            for second in group[i + 1 :]:
                assert touched(entries[first]).isdisjoint(touched(entries[second]))
    assert sorted(map(sorted, groups)) == sorted(
        [["a", "d", "e"], ["b"], ["c"], ["seeds"], ["hooks"], ["rebinds"], ["broken"]]
    )
    assert all(len(g) == 1 for g in packs(entries, alone=True))


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
    members: dict[str, list[str]] = {}  # student of the class -> corpus answers handed in
    for kind, entries in (("wrong", students), ("right", right)):
        for i, names in enumerate(packs(entries, alone=ALONE), 1):
            student = f"{kind}{i}"
            members[student] = names
            answers = {gid: text for n in names for gid, text in entries[n]["answers"].items()}
            hand_in(student, reference | answers)
            lost = {gid: float(s) for n in names for gid, s in entries[n].get("scores", {}).items()}
            expected[student] = full | lost

    # The course's own parallel driver: one grading process per student, 2 at a time.
    outcomes = autograde_all(course, worksheet, list(expected), release, workers=2)
    logs = {o.student: course.log(worksheet, o.student).read_text()[-2000:] for o in outcomes}
    assert all(o.ok for o in outcomes), logs
    noted = {
        ", ".join(members[o.student]): o.notes
        for o in outcomes
        if o.notes and o.student.startswith("right")
    }
    assert not noted, f"right answers with grading notes: {noted}"

    entries = students | right
    wrongly = []
    for student, want in expected.items():
        got = course.scores(worksheet, student)
        for gid in sorted(full):
            if got.get(gid) != pytest.approx(want[gid]):
                owners = [n for n in members.get(student, []) if gid in touched(entries[n])]
                owners = owners or members.get(student, [student])
                wrongly.append(
                    f"{student}/{gid}: {got.get(gid)} != {want[gid]} ({', '.join(owners)})"
                )
    assert not wrongly, (
        "\n".join(wrongly) + "\n(graded with their packmates: DLCOURSE_CORPUS_ALONE=1 "
        "hands in every answer alone; the autograded notebooks say why each test failed)"
    )
