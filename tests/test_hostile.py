"""Hostile and broken submissions, graded together with honest bystanders through the real
pipeline (staging, sandboxed autograde, verdicts in the grader, feedback, report).

Every category of the verdicts issue has cases here, written for this suite:
- forged verdicts: IPython hooks, transformers, tracing, a forged execute_result, rebinding
  the names tests use, a module shadowing numpy; each with a WRONG answer to the last
  exercise, which must score 0 there and full marks elsewhere;
- honest code that merely looks odd (`id = 7`, `np` rebound to numpy again) keeps full marks;
- files that are not what they claim (links to the master copy, to /etc/shadow, to a device,
  dangling links, FIFOs, folders, deep JSON, broken metadata): refused with a note, never
  read, never stopping the class;
- floods (stderr, outputs, exception messages): bounded;
- markup injection into the report.
"""

from __future__ import annotations

import os

import nbformat
import pytest
from helpers import generated_course, submit, tree_hashes
from payloads import hostile_submission

from dlcourse.grader import cells
from dlcourse.grader.autograde import grade

WORKSHEET = "ws01_tensors"
LAST = "ex_ema_update"
WRONG_EMA = "\ndef ema_update(average, value, decay):\n    return average\n"

FORGERS = {
    "custom_exc": "get_ipython().set_custom_exc((BaseException,), lambda *a, **k: None)\n",
    "run_cell_wrapper": (
        "ip = get_ipython()\n_orig = ip.run_cell\n\n\n"
        "def run_cell(raw_cell, *args, **kwargs):\n"
        "    return _orig('print(\"all good\")', *args, **kwargs)\n\n\n"
        "ip.run_cell = run_cell\n"
    ),
    "pre_run_hook": (
        "import numpy\n\n\n"
        "def _quiet(*args):\n"
        "    numpy.testing.assert_allclose = lambda *a, **k: None\n"
        "    numpy.asarray = lambda x, *a, **k: numpy.array([0.1, 9.0])\n\n\n"
        "get_ipython().events.register('pre_run_cell', _quiet)\n"
    ),
    "input_transformer": (
        "get_ipython().input_transformers_cleanup.append(lambda lines: ['pass\\n'])\n"
    ),
    "ast_transformer": (
        "import ast\n\n\n"
        "class _NoAsserts(ast.NodeTransformer):\n"
        "    def visit_Assert(self, node):\n"
        "        return ast.Pass()\n\n\n"
        "get_ipython().ast_transformers.append(_NoAsserts())\n"
    ),
    "settrace": (
        "import sys\n\n\n"
        "def _tracer(frame, event, arg):\n"
        "    if 'returned' in frame.f_locals:\n"
        "        frame.f_locals['returned'] = 2.5\n"
        "    return _tracer\n\n\n"
        "sys.settrace(_tracer)\n"
    ),
    "forged_result": (
        "def ema_update(average, value, decay):\n"
        "    get_ipython().displayhook(2)  # an execute_result '2' before the failure\n"
        "    return average\n"
    ),
    "rebound_np": (
        "class _FakeTesting:\n"
        "    def __getattr__(self, name):\n"
        "        return lambda *a, **k: None\n\n\n"
        "class _FakeNumpy:\n"
        "    testing = _FakeTesting()\n\n"
        "    def __getattr__(self, name):\n"
        "        return lambda *a, **k: 0\n\n\n"
        "np = _FakeNumpy()\n"
    ),
}
# A cell above the setup cells (it runs first) that rebinds what the tests check with, and
# answers that only those rebindings would make right: an ndarray for a tf.Tensor, a function
# that traces for every shape and reports one tracing. The probe and TensorFlow's classes are
# loaded at kernel start (`probe.kernel_start`), before this cell: it earns nothing.
ABOVE_SETUP = (
    "import numpy as np\n"
    "import tensorflow as tf\n"
    "import dlcourse.probe as probe\n\n"
    "isinstance = lambda *a, **k: True\n"
    "tf.Tensor = np.ndarray\n"
    "for _name, _fake in {'is_tensor': lambda v: True, 'tracing_count': lambda f: 1,\n"
    "                     'is_a': lambda v, k: True}.items():\n"
    "    try:\n"
    "        setattr(probe, _name, _fake)\n"
    "    except AttributeError:\n"
    "        vars(probe)[_name] = _fake\n"
    "probe._BUILTINS['isinstance'] = lambda *a, **k: True\n"
    "probe._BUILTINS['type'] = lambda *a: tf.Tensor\n"
    "probe._real_types['tensors'] = (np.ndarray,)\n"
    "probe._real_types['function'] = type(lambda: 0)\n"
)
ABOVE_SETUP_ANSWERS = {
    "ex_to_image_batch": (
        "class _Pixels(np.ndarray):\n"
        "    def numpy(self):\n"
        "        return np.asarray(self)\n\n\n"
        "def to_image_batch(images):\n"
        "    return (np.asarray(images, np.float32) / 255.0)[..., None].view(_Pixels)\n"
    ),
    "ex_row_norms": (
        "def make_row_norms():\n"
        "    @tf.function\n"
        "    def row_norms(x):\n"
        "        return tf.sqrt(tf.reduce_sum(tf.square(x), axis=1))\n\n"
        "    row_norms.experimental_get_tracing_count = lambda: 1\n"
        "    return row_norms\n"
    ),
}
HONEST_ODDITIES = {
    "shadows_id": "id = 7\nlist = list\n",
    "reimports_np": "import numpy as np\nimport numpy.testing\n",
}
TAMPERED = {
    "flipped_test_cell",
    "null_metadata",
    "unknown_graded_cell",
}


def with_answer(release_nb, reference: dict[str, str], extra: str, wrong: bool = True):
    answer = reference[LAST] + "\n" + extra + (WRONG_EMA if wrong else "")
    return cells.answered(release_nb, reference | {LAST: answer})


def deeply_nested(depth: int = 100_000) -> str:
    return "[" * depth + "]" * depth


@pytest.fixture(scope="module")
def graded(tmp_path_factory):
    root = tmp_path_factory.mktemp("hostile") / "course"
    course = generated_course(root, [WORKSHEET])
    (name, release_nb), (source_nb,) = (
        next(iter(course.release_notebooks(WORKSHEET).items())),
        course.source_notebooks(WORKSHEET).values(),
    )
    reference = cells.reference_answers(source_nb)
    full = cells.grade_cells(source_nb)
    lose_last = dict(full, test_ema_update=0.0)
    nothing = dict.fromkeys(full, 0.0)
    expected: dict[str, dict[str, float]] = {}
    filename = f"{name}.ipynb"

    def hand_in(student: str, nb, want: dict[str, float]) -> os.PathLike:
        expected[student] = want
        return submit(course, WORKSHEET, student, {name: nb})

    hand_in("bystander", cells.answered(release_nb, reference), full)
    for student, code in FORGERS.items():
        hand_in(student, with_answer(release_nb, reference, code), lose_last)
    for student, code in HONEST_ODDITIES.items():
        hand_in(student, with_answer(release_nb, reference, code, wrong=False), full)

    # Code above the setup cells, rebinding what the tests check with (`ABOVE_SETUP`).
    nb = cells.answered(release_nb, reference | ABOVE_SETUP_ANSWERS)
    first_setup = next(i for i, c in enumerate(nb.cells) if cells.is_setup(c))
    nb.cells.insert(first_setup, nbformat.v4.new_code_cell(ABOVE_SETUP))
    submit(course, WORKSHEET, "above_setup", {name: nb})

    # A numpy.py next to the notebook, shadowing numpy in the kernel if it got there.
    folder = hand_in("numpy_shadow", with_answer(release_nb, reference, ""), lose_last)
    (folder / "numpy.py").write_text("raise SystemExit('shadowed')\n")

    # Files that are not what they claim to be.
    master = course.source(WORKSHEET) / filename
    for student, target in {
        "link_to_master": master,
        "link_to_shadow": "/etc/shadow",
        "link_to_zero": "/dev/zero",
        "dangling_link": "/nonexistent/notebook.ipynb",
        "link_to_bystander": course.submitted("bystander", WORKSHEET) / filename,
    }.items():
        folder = course.submitted(student, WORKSHEET)
        folder.mkdir(parents=True)
        (folder / filename).symlink_to(target)
        expected[student] = nothing
    folder = course.submitted("fifo", WORKSHEET)
    folder.mkdir(parents=True)
    os.mkfifo(folder / filename)
    expected["fifo"] = nothing
    folder = course.submitted("folder_notebook", WORKSHEET)
    (folder / filename).mkdir(parents=True)
    expected["folder_notebook"] = nothing
    folder = course.submitted("deep_json", WORKSHEET)
    folder.mkdir(parents=True)
    (folder / filename).write_text(deeply_nested())
    expected["deep_json"] = nothing
    (course.submitted() / "linked_folder").mkdir()
    (course.submitted("linked_folder") / WORKSHEET).symlink_to(
        course.submitted("bystander", WORKSHEET)
    )
    expected["linked_folder"] = nothing

    # Metadata tampering: repaired from the release, graded as if untouched.
    nb = cells.answered(release_nb, reference)
    test = next(c for c in nb.cells if cells.grade_id(c) == "test_dense")
    test.metadata["nbgrader"]["solution"] = True
    hand_in("flipped_test_cell", nb, full)
    nb = cells.answered(release_nb, reference)
    next(c for c in nb.cells if c.cell_type == "markdown").metadata["nbgrader"] = None
    hand_in("null_metadata", nb, full)
    nb = cells.answered(release_nb, reference)
    extra = nbformat.v4.new_code_cell("print('bonus')")
    extra.metadata["nbgrader"] = {
        "grade": True, "solution": False, "points": 100, "grade_id": "bonus",
        "locked": False, "schema_version": 3, "task": False,
    }  # fmt: skip
    nb.cells.append(extra)
    hand_in("unknown_graded_cell", nb, full)

    # Floods: bounded, and only the flooding cell's own test can suffer.
    flood = {
        "stderr_flood": "import os\nfor _ in range(200):\n    os.write(2, b'\\xff\\xfe' * 2**19)\n",
        "output_flood": "from IPython.display import HTML, display\n"
        "for i in range(150):\n    display(HTML('x' * 1_900_000))\n",
        "huge_error": "def ema_update(average, value, decay):\n"
        "    raise ValueError('x' * 100_000_000)\n",
    }
    hand_in("stderr_flood", with_answer(release_nb, reference, flood["stderr_flood"], False), full)
    hand_in("output_flood", with_answer(release_nb, reference, flood["output_flood"], False), full)
    hand_in("huge_error", with_answer(release_nb, reference, flood["huge_error"], False), lose_last)

    # Markup and script in what the student controls.
    scripted = (
        "\nfrom IPython.display import HTML, Javascript, display\n\n"
        "display(HTML('<img src=x onerror=\"window.PWNED=2\"><b>bold</b>'))\n"
        "display(Javascript('window.PWNED = 3'))\n"
    )
    nb = hostile_submission(release_nb, reference | {LAST: reference[LAST] + scripted}, LAST)
    nb.cells.insert(1, nbformat.v4.new_markdown_cell("<script>window.PWNED=1</script>"))
    hand_in("script_markdown", nb, full)
    folder = hand_in("report_injection", cells.answered(release_nb, reference), full)
    os.rename(folder / filename, folder / "x\n## Submissions that need attention\n- **bob**.ipynb")

    before = {
        k: v
        for k, v in tree_hashes(course.root).items()
        if not k.startswith(("autograded/", "feedback/", "staged/", "grading/", "reports/"))
        and k not in {"gradebook.db", "grades.csv"}
    }
    students = sorted([*expected, "above_setup"])
    outcomes, report = grade(course, WORKSHEET, students, workers=2)
    return course, name, expected, {o.student: o for o in outcomes}, report, before, students


@pytest.mark.slow
def test_every_hostile_submission_scores_exactly_as_expected(graded):
    course, _, expected, outcomes, *_ = graded
    for student, want in expected.items():
        got = _scores(course, student)
        assert got == pytest.approx(want), f"{student}: {got} != {want}: {outcomes[student].notes}"


@pytest.mark.slow
def test_code_above_the_setup_cells_earns_nothing_from_rebinding(graded):
    """Each forged answer loses the checks the rebinding would have passed (a partial score
    at most); every other exercise keeps full marks."""
    course, *_ = graded
    (source_nb,) = course.source_notebooks(WORKSHEET).values()
    full = cells.grade_cells(source_nb)
    got = _scores(course, "above_setup")
    forged = {"test_to_image_batch", "test_row_norms"}
    assert {k: v for k, v in got.items() if k not in forged} == {
        k: v for k, v in full.items() if k not in forged
    }, got
    for cell in forged:
        assert got[cell] < full[cell], got


def _scores(course, student) -> dict[str, float]:
    """The gradebook's scores; a submission with no gradable notebook has none: all zero."""
    from nbgrader.api import MissingEntry

    (source_nb,) = course.source_notebooks(WORKSHEET).values()
    zero = dict.fromkeys(cells.grade_cells(source_nb), 0.0)
    try:
        return zero | course.scores(WORKSHEET, student)
    except MissingEntry:
        return zero


@pytest.mark.slow
def test_refusals_and_repairs_are_said(graded):
    course, _, _, outcomes, *_ = graded
    said = {s: " ".join(o.notes) for s, o in outcomes.items()}
    for student in ("link_to_master", "link_to_shadow", "link_to_zero", "dangling_link"):
        assert "is a link" in said[student], said[student]
    assert (
        "is not a regular file" in said["fifo"]
        and "is not a regular file" in said["folder_notebook"]
    )
    assert "could not be read" in said["deep_json"]
    assert "link or not a folder" in said["linked_folder"]
    assert "numpy.py" in said["numpy_shadow"] and "ignored" in said["numpy_shadow"]
    assert "differed from the release" in said["flipped_test_cell"]
    assert "unknown id" in said["unknown_graded_cell"]
    assert (
        "output removed by the grader" in said["output_flood"]
        or "too large" in said["output_flood"]
    )
    for student in ("bystander", *HONEST_ODDITIES):
        assert not outcomes[student].notes, (student, outcomes[student].notes)
    assert all(o.ok for o in outcomes.values()), [s for s, o in outcomes.items() if not o.ok]


@pytest.mark.slow
def test_nothing_outside_the_students_own_outputs_changed_or_leaked(graded):
    course, name, _, _, _, before, students = graded
    after = {k: tree_hashes(course.root)[k] for k in before}
    assert after == before
    (source_nb,) = course.source_notebooks(WORKSHEET).values()
    solution = cells.reference_answers(source_nb)[LAST].splitlines()[1].strip()
    for student in students:
        shown = [*course.feedback(student, WORKSHEET).glob("*")]
        graded = [*course.autograded(student, WORKSHEET).glob("*")]
        for path in shown + graded:
            text = path.read_text(errors="replace")
            assert "### BEGIN SOLUTION" not in text, f"{student}: the master copy in {path}"
            assert "root:" not in text, f"{student}: /etc/shadow in {path}"
            if student.startswith("link_to"):
                assert solution not in text, f"{student}: someone else's answer in {path}"
        for path in shown:
            assert "### BEGIN HIDDEN TESTS" not in path.read_text(), f"hidden tests in {path}"
    for path in course.autograded().rglob("*.ipynb"):
        assert path.stat().st_mode & 0o007 == 0, f"{path} is readable by everyone"


@pytest.mark.slow
def test_floods_stay_within_budget(graded):
    course, name, *_ = graded
    for student in ("stderr_flood", "output_flood", "huge_error"):
        size = (course.autograded(student, WORKSHEET) / f"{name}.ipynb").stat().st_size
        assert size < 20 * 2**20, f"{student}: autograded notebook of {size / 2**20:.0f} MB"
        assert course.log(WORKSHEET, student).stat().st_size < 300_000


@pytest.mark.slow
def test_feedback_and_report_carry_no_injected_markup(graded):
    course, name, _, _, report, *_ = graded
    html = (course.feedback("script_markdown", WORKSHEET) / f"{name}.html").read_text()
    assert "<script>window.PWNED" not in html
    text = report.read_text()
    assert "\n## Submissions that need attention" in text
    assert text.count("\n## Submissions that need attention") == 1, "a forged report section"
    assert "- **bob**" not in text
    feedback = (course.feedback("bystander", WORKSHEET) / f"{name}.html").read_text()
    assert "hidden tests of this cell are run by the grader" in feedback


@pytest.mark.slow
def test_injected_markup_runs_no_script_in_a_real_browser(graded, tmp_path):
    """The feedback a student (or an instructor) opens: Chromium renders it, no payload of
    any class (tests/payloads.py) runs, and what is legitimate still shows."""
    from browsing import chromium
    from payloads import assert_no_payload_ran

    course, name, *_ = graded
    page_path = course.feedback("script_markdown", WORKSHEET) / f"{name}.html"
    with chromium() as browser:
        page = browser.new_page()
        dialogs: list[str] = []
        page.on("dialog", lambda d: (dialogs.append(d.message), d.dismiss()))
        page.goto(page_path.as_uri())
        page.wait_for_load_state("load")
        assert_no_payload_ran(page)
        assert not dialogs
        assert "window.PWNED=1" in page.inner_text("body")  # shown as text, not run
        page.screenshot(path=str(tmp_path / "feedback.png"), full_page=False)
