"""The course as people see it: JupyterLab + nbgrader in a real (headless) Chromium.

One JupyterLab server runs on a free loopback port over a throwaway copy of the course
(nbgrader_config.py, source/, release/; the nbgrader exchange inside the copy), so nothing in
the repo changes. Playwright drives Debian's /usr/bin/chromium (no browser download).

- Student: the lab loads, nbgrader's Assignment List lists the released worksheet, a released
  worksheet opens, its first cell runs in a live kernel and prints the CPU banner, and the
  Validate button validates it.
- Instructor: the Formgrader page lists every worksheet in source/.
- Student configuration (deploy/student, `make student-lab`): a second server in a work folder
  outside the course: no formgrader/course-list endpoints, the Nbgrader menu holds only the
  Assignment List, no news prompt; the worksheet is fetched through the Assignment List and
  its first cell runs in the course's kernel with no stderr block (screenshot 07-...).

Screenshots go to artifacts/browser/ (git-ignored). The server is killed by PID (its process
group and every process it started) in the fixture's teardown, whatever happens in the test.
"""

from __future__ import annotations

import contextlib
import json
import os
import re
import shutil
import sys
import urllib.error
import urllib.request
from dataclasses import dataclass
from pathlib import Path

import nbformat
import pytest
from browsing import CHROMIUM, chromium, screenshot
from helpers import plain_nbgrader, written_points
from servers import get, running_lab

from dlcourse.data import course_data_dir
from dlcourse.grader.course import Course
from dlcourse.grader.runner import nbgrader

REPO = Path(__file__).resolve().parent.parent
STUDENT_CONFIG = REPO / "deploy" / "student"
ARTIFACTS = REPO / "artifacts" / "browser"
UI_TIMEOUT = 60_000  # ms: the lab, the palette, the formgrader tables
KERNEL_TIMEOUT = 120_000  # ms: kernel start + `import tensorflow` on 2 busy cores
VALIDATE_TIMEOUT = 150_000  # ms: nbgrader runs the whole worksheet in quick mode
STANDIN = "ws00_browser_smoke"

pytestmark = pytest.mark.slow


@dataclass
class Lab:
    base: str  # http://127.0.0.1:PORT
    token: str
    course: Path
    worksheets: list[str]  # assignments in the copy's source/
    released: str  # the worksheet the student opens
    notebook: str  # its path relative to the course root
    env: dict  # the instructor server's environment (exchange, Jupyter dirs)
    root: Path  # the temporary folder holding the course, the exchange, Jupyter's dirs


def standin_worksheet(course: Path) -> None:
    """A minimal master worksheet, used only while the repo has no worksheets yet."""

    def meta(grade_id, *, solution=False, grade=False, locked=True, points=None):
        md = {
            "grade": grade,
            "grade_id": grade_id,
            "locked": locked,
            "schema_version": 3,
            "solution": solution,
            "task": False,
        }
        if points is not None:
            md["points"] = points
        return {"nbgrader": md}

    v4 = nbformat.v4
    nb = v4.new_notebook(
        cells=[
            v4.new_markdown_cell("# Browser smoke worksheet", metadata=meta("intro")),
            v4.new_code_cell(
                "from dlcourse import seed_everything, setup\n\nseed_everything(42)\n"
                "info = setup()",
                metadata=meta("setup"),
            ),
            v4.new_code_cell(
                "def double(x):\n    ### BEGIN SOLUTION\n    return 2 * x\n    ### END SOLUTION",
                metadata=meta("ex_double", solution=True, locked=False),
            ),
            v4.new_code_cell(
                "assert double(2) == 4",
                metadata=meta("test_double", grade=True, points=1),
            ),
        ],
        metadata={"kernelspec": {"name": "python3", "display_name": "Python 3 (ipykernel)"}},
    )
    folder = course / "source" / STANDIN
    folder.mkdir(parents=True)
    nbformat.write(nb, folder / f"{STANDIN}.ipynb")


def course_copy(root: Path) -> tuple[Path, str]:
    """Copy the course; make sure it has a released worksheet; return (course, worksheet)."""
    course = root / "course"
    course.mkdir()
    shutil.copy(REPO / "nbgrader_config.py", course)
    for name in ("source", "release"):
        if (REPO / name).is_dir():
            shutil.copytree(REPO / name, course / name)
        (course / name).mkdir(exist_ok=True)
    released = sorted(p.parent.name for p in (course / "release").glob("*/*.ipynb"))
    if released:
        return course, released[0]
    if not Course(course).assignments():  # no worksheets in the repo yet
        standin_worksheet(course)
    worksheet = Course(course).assignments()[0]
    done = nbgrader(course, "generate_assignment", worksheet, "--force", check=False)
    assert done.returncode == 0, done.stderr
    return course, worksheet


def lab_settings(config_dir: Path) -> None:
    """No news / update toasts over the UI (and no request for them)."""
    folder = config_dir / "lab" / "user-settings" / "@jupyterlab" / "apputils-extension"
    folder.mkdir(parents=True)
    (folder / "notification.jupyterlab-settings").write_text(
        json.dumps({"fetchNews": "false", "checkForUpdates": False})
    )


@pytest.fixture(scope="module")
def lab(tmp_path_factory):
    if not CHROMIUM.exists():
        if os.environ.get("CI"):
            pytest.fail(f"{CHROMIUM} missing on CI: .ci/run installs Debian's chromium")
        pytest.skip(f"{CHROMIUM} not installed (apt-get install chromium)")

    root = tmp_path_factory.mktemp("browser")
    course, worksheet = course_copy(root)
    notebook = sorted((course / "release" / worksheet).glob("*.ipynb"))[0]
    # The banner must come from the live kernel, not from a committed output.
    nb = nbformat.read(notebook, as_version=4)
    for cell in nb.cells:
        if cell.cell_type == "code":
            cell.outputs, cell.execution_count = [], None
    nbformat.write(nb, notebook)

    jupyter = root / "jupyter"
    # The course copy is outside the repo: the server (formgrader's autograde) is told where
    # the data sets are, as an instructor's course outside the repo would be.
    found = course_data_dir()
    env = (
        os.environ
        | ({"DLCOURSE_DATA": str(found)} if found else {})
        | {
            "DLCOURSE_QUICK": "1",
            "TF_CPP_MIN_LOG_LEVEL": "3",
            "PYTHONHASHSEED": "0",
            "DLCOURSE_EXCHANGE": str(root / "exchange"),
            # Nothing from (or into) the user's own Jupyter/IPython directories.
            "JUPYTER_CONFIG_DIR": str(jupyter / "config"),
            "JUPYTER_DATA_DIR": str(jupyter / "data"),
            "JUPYTER_RUNTIME_DIR": str(jupyter / "runtime"),
            "IPYTHONDIR": str(jupyter / "ipython"),
            "PATH": f"{Path(sys.executable).parent}{os.pathsep}{os.environ.get('PATH', '')}",
        }
    )
    lab_settings(jupyter / "config")

    # The instructor releases the worksheet to the (temporary) exchange.
    for args in (["db", "assignment", "add", worksheet], ["release_assignment", worksheet]):
        done = plain_nbgrader(course, env, *args)
        assert done.returncode == 0, f"nbgrader {' '.join(args)}:\n{done.stderr}"

    with running_lab(course, course, env, root / "jupyter.log", ARTIFACTS) as (base, token):
        yield Lab(
            base=base,
            token=token,
            course=course,
            worksheets=Course(course).assignments(),
            released=worksheet,
            notebook=str(notebook.relative_to(course)),
            env=env,
            root=root,
        )


@pytest.fixture(scope="module")
def browser(lab):
    with chromium() as browser:
        yield browser


@pytest.fixture(scope="module")
def student_lab(lab):
    """A student's JupyterLab: deploy/student's configuration, a work folder outside the
    course, the same exchange; no TF_* variables from here (the kernel spec brings them)."""
    work = lab.root / "student-work"
    work.mkdir()
    jupyter = lab.root / "student-jupyter"
    env = {k: v for k, v in lab.env.items() if not k.startswith("TF_")} | {
        "JUPYTER_CONFIG_PATH": str(STUDENT_CONFIG),
        "JUPYTER_CONFIG_DIR": str(jupyter / "config"),
        "JUPYTER_DATA_DIR": str(jupyter / "data"),
        "JUPYTER_RUNTIME_DIR": str(jupyter / "runtime"),
        "IPYTHONDIR": str(jupyter / "ipython"),
    }
    env.pop("PYTEST_CURRENT_TEST", None)  # else ipykernel does not capture fd 2 (stderr)
    with running_lab(work, work, env, lab.root / "student-jupyter.log", ARTIFACTS) as (
        base,
        token,
    ):
        yield Lab(
            base=base,
            token=token,
            course=work,
            worksheets=[],
            released=lab.released,
            notebook=f"{lab.released}/{Path(lab.notebook).name}",
            env=env,
            root=work,
        )


@contextlib.contextmanager
def open_page(browser, lab, name):
    context = browser.new_context(viewport={"width": 1400, "height": 900})
    blocked = []

    def loopback_only(route):
        if route.request.url.startswith(lab.base):
            route.continue_()
        else:
            blocked.append(route.request.url)
            route.abort()

    context.route("**/*", loopback_only)
    page = context.new_page()
    page.set_default_timeout(UI_TIMEOUT)
    try:
        yield page
    finally:
        shot(page, f"{name}-end")
        context.close()
        if blocked:
            print("requests to other hosts were blocked:", *blocked, sep="\n  ")


@pytest.fixture
def page(browser, lab, request):
    with open_page(browser, lab, request.node.name) as p:
        yield p


@pytest.fixture
def student_page(browser, student_lab, request):
    with open_page(browser, student_lab, request.node.name) as p:
        yield p


def shot(page, name: str) -> None:
    screenshot(page, ARTIFACTS, name)


def run_first_cell(page, url: str):
    """Open a worksheet in JupyterLab and run its first code cell as a student would; the
    cell's locator once the banner is there."""
    from playwright.sync_api import expect

    # Lab sometimes asks which kernel to start (when the kernel specs arrive late): a student
    # accepts the proposed one, Python 3 (ipykernel).
    page.add_locator_handler(
        page.locator(".jp-Dialog", has_text="Select Kernel"),
        lambda dialog: dialog.locator(".jp-mod-accept").click(),
    )
    page.goto(url)
    panel = page.locator(".jp-NotebookPanel:visible")
    expect(panel).to_have_count(1)
    idle = panel.locator(".jp-Notebook-ExecutionIndicator[data-status='idle']")
    expect(idle).to_have_count(1, timeout=KERNEL_TIMEOUT)
    first = panel.locator(".jp-CodeCell").first
    prompt = first.locator(".jp-InputPrompt")
    for _ in range(3):  # a run requested while the kernel handshake is still going is dropped
        prompt.click()
        page.keyboard.press("Shift+Enter")
        try:
            expect(prompt).to_have_text(re.compile(r"\[(\*|\d+)\]"), timeout=15_000)
            break
        except AssertionError:
            continue
    expect(first.locator(".jp-OutputArea-output")).to_contain_text(
        "Running on CPU (", timeout=KERNEL_TIMEOUT
    )
    expect(prompt).to_have_text(re.compile(r"\[\d+\]"))
    return first


def test_student_lab_assignment_list_banner_and_validate(lab, page):
    from playwright.sync_api import expect

    # The lab loads: main dock panel and the launcher.
    page.goto(f"{lab.base}/lab?token={lab.token}")
    expect(page.locator("#jp-main-dock-panel")).to_be_visible()
    expect(page.locator(".jp-Launcher").first).to_be_visible()
    shot(page, "01-student-lab")

    # nbgrader's menu and its Assignment List command (through the command palette).
    expect(page.locator(".lm-MenuBar-itemLabel", has_text="Nbgrader")).to_have_count(1)
    page.keyboard.press("Control+Shift+C")
    palette = page.locator("#modal-command-palette")
    expect(palette).to_be_visible()
    palette.locator("input").fill("Assignment List")
    palette.locator('li[data-command="nbgrader:open-assignment-list"]').click()
    tab = page.locator("#jp-main-dock-panel .lm-TabBar-tab", has_text="Assignments")
    expect(tab).to_be_visible()
    released = page.locator("#released_assignments_list")
    expect(released.locator(".list_item", has_text=lab.released)).to_be_visible()
    shot(page, "02-student-assignment-list")

    # A released worksheet opens in a live kernel; its first code cell prints the banner.
    run_first_cell(page, f"{lab.base}/lab/tree/{lab.notebook}")
    shot(page, "03-student-first-cell")
    panel = page.locator(".jp-NotebookPanel:visible")

    # nbgrader's Validate button validates the (unanswered) worksheet.
    validate = panel.locator(".validate-button")
    expect(validate).to_be_visible()
    expect(validate).to_contain_text("Validate")
    validate.click()
    dialog = page.locator(".jp-Dialog")
    expect(dialog).to_be_visible(timeout=VALIDATE_TIMEOUT)
    expect(dialog.locator(".jp-Dialog-header")).not_to_contain_text(
        "Validating", timeout=VALIDATE_TIMEOUT
    )
    shot(page, "04-student-validate")
    text = dialog.inner_text()
    # An unanswered release fails validation: the stubs raise NotImplementedError. The
    # dialog says how many graded checks fail, and lists each (dlcourse/validate.py).
    assert "fail" in text.lower() or "NotImplementedError" in text, text
    count = re.search(r"(\d+) of (\d+) graded checks? fails?", text)
    assert count, text
    failing, graded = map(int, count.groups())
    assert failing == text.count("The following cell failed") and 0 < failing <= graded, text


def test_instructor_formgrader_lists_the_worksheets(lab, page):
    from playwright.sync_api import expect

    assert lab.worksheets, "the course copy has no worksheets in source/"
    page.goto(f"{lab.base}/formgrader?token={lab.token}")
    names = page.locator("#main-table td.name")
    for worksheet in lab.worksheets:
        expect(names.filter(has_text=worksheet)).to_have_count(1)
    shot(page, "05-instructor-formgrader")


def test_student_config_has_no_instructor_tools_and_a_quiet_first_cell(student_lab, student_page):
    from playwright.sync_api import expect

    page = student_page
    # Server side first: the instructor endpoints do not exist for a student.
    for path in ("formgrader", "formgrader/api/assignments", "formgraders"):
        with pytest.raises(urllib.error.HTTPError) as err:
            get(f"{student_lab.base}/{path}", student_lab.token)
        assert err.value.code == 404, path

    page.goto(f"{student_lab.base}/lab?token={student_lab.token}")
    expect(page.locator(".jp-Launcher").first).to_be_visible()
    # The file browser shows the student's own folder: no source/, gradebook or submitted/.
    listing = page.locator(".jp-DirListing").first
    expect(listing).to_be_visible()
    for name in ("source", "gradebook.db", "submitted", "nbgrader_config.py"):
        expect(listing.get_by_text(name, exact=True)).to_have_count(0)

    # The Nbgrader menu: the student's tools only.
    page.locator(".lm-MenuBar-itemLabel", has_text="Nbgrader").click()
    menu = page.locator(".lm-Menu-content")
    expect(menu).to_be_visible()
    items = [t.strip() for t in menu.locator(".lm-Menu-itemLabel").all_inner_texts() if t.strip()]
    shot(page, "06-student-nbgrader-menu")
    assert any("Assignment List" in t for t in items), items
    for tool in ("Formgrader", "Create Assignment", "Course List"):
        assert not any(tool.lower() in t.lower() for t in items), items
    page.keyboard.press("Escape")
    # No news prompt (JupyterLab's announcements plugin is disabled).
    expect(page.get_by_text("official Jupyter news")).to_have_count(0)

    # Fetch the released worksheet from the Assignment List into the work folder.
    page.keyboard.press("Control+Shift+C")
    palette = page.locator("#modal-command-palette")
    palette.locator("input").fill("Assignment List")
    palette.locator('li[data-command="nbgrader:open-assignment-list"]').click()
    released = page.locator("#released_assignments_list")
    item = released.locator(".list_item", has_text=student_lab.released)
    expect(item).to_be_visible()
    item.locator("button", has_text="Fetch").click()
    fetched = page.locator("#fetched_assignments_list")
    expect(fetched.locator(".list_item", has_text=student_lab.released).first).to_be_visible()
    assert (student_lab.root / student_lab.notebook).is_file()

    # Its first cell runs in the course's kernel: the banner, and no red stderr block.
    first = run_first_cell(page, f"{student_lab.base}/lab/tree/{student_lab.notebook}")
    page.wait_for_timeout(2000)  # fd-level stderr arrives asynchronously: give it time
    shot(page, "07-student-first-cell-no-stderr")
    stderr = first.locator("[data-mime-type='application/vnd.jupyter.stderr']")
    assert stderr.count() == 0, stderr.all_inner_texts()


def reference_submission(lab) -> tuple[Course, str, nbformat.NotebookNode]:
    """(course, notebook name, the release answered with the reference solution). The lab's
    course has the release but not its gradebook entries: make them, as an instructor does
    once per worksheet."""
    from dlcourse.grader import cells

    course = Course(lab.course)
    nbgrader(course.root, "generate_assignment", lab.released, "--force")
    (name, release_nb), (source_nb,) = (
        next(iter(course.release_notebooks(lab.released).items())),
        course.source_notebooks(lab.released).values(),
    )
    return course, name, cells.answered(release_nb, cells.reference_answers(source_nb))


def test_formgrader_shows_injected_markup_as_text_and_runs_nothing(lab, page):
    """What a student put into Markdown or an output must not run with the instructor's
    session when the instructor opens the submission in formgrader."""
    from helpers import submit

    from dlcourse.grader.autograde import grade

    course, name, nb = reference_submission(lab)
    nb.cells.insert(1, nbformat.v4.new_markdown_cell("<img src=x onerror='window.PWNED=1'>"))
    nb.cells.insert(2, nbformat.v4.new_markdown_cell("<script>window.PWNED=2</script>"))
    submit(course, lab.released, "mallory", {name: nb})
    outcomes, _ = grade(course, lab.released, ["mallory"], workers=1)
    assert outcomes[0].ok, outcomes[0].notes
    with course.gradebook() as gb:
        notebook_id = gb.find_submission_notebook(name, lab.released, "mallory").id

    dialogs: list[str] = []
    page.on("dialog", lambda d: (dialogs.append(d.message), d.dismiss()))
    page.goto(f"{lab.base}/formgrader/submissions/{notebook_id}/?token={lab.token}")
    page.wait_for_load_state("load")
    page.wait_for_timeout(1000)
    assert page.evaluate("typeof window.PWNED") == "undefined"
    assert not dialogs
    assert "window.PWNED=2" in page.inner_text("body")  # shown as text
    shot(page, "08-formgrader-injected-submission")


def test_formgrader_grades_every_payload_class_and_no_page_runs_one(lab, browser, page):
    """Every payload class (tests/payloads.py), graded through formgrader's Autograde and
    Generate Feedback buttons (their API): the grading view, opened with the instructor's
    session, runs none and sends a CSP header; formgrader still works there (a score can be
    entered and is saved); the feedback page runs none either."""
    from helpers import submit
    from payloads import assert_no_payload_ran, hostile_submission
    from playwright.sync_api import expect

    from dlcourse.grader import cells

    course, name, _ = reference_submission(lab)
    (source_nb,) = course.source_notebooks(lab.released).values()
    release_nb = next(iter(course.release_notebooks(lab.released).values()))
    reference = cells.reference_answers(source_nb)
    answers = [c for c in source_nb.cells if cells.is_answer(c) and c.cell_type == "code"]
    last = cells.grade_id(answers[-1])
    submit(course, lab.released, "trudy", {name: hostile_submission(release_nb, reference, last)})
    api = f"{lab.base}/formgrader/api"
    for url in (
        f"{api}/submission/{lab.released}/trudy/autograde",
        f"{api}/assignment/{lab.released}/trudy/generate_feedback",
    ):
        result = json.loads(get(url, lab.token, timeout=600, method="POST"))
        assert result["success"], result.get("error", "")[-3000:]
    with course.gradebook() as gb:
        submission = gb.find_submission(lab.released, "trudy")
        written = written_points(course, lab.released)  # graded by hand: 0 until then
        assert submission.score == submission.max_score - written > 0
        notebook_id = gb.find_submission_notebook(name, lab.released, "trudy").id

    dialogs: list[str] = []
    page.on("dialog", lambda d: (dialogs.append(d.message), d.dismiss()))
    # The instructor's session for the view's own API calls too (a token in the page's URL
    # logs in that request only).
    page.context.set_extra_http_headers({"Authorization": f"token {lab.token}"})
    response = page.goto(f"{lab.base}/formgrader/submissions/{notebook_id}/")
    header = response.headers["content-security-policy"]
    assert "default-src 'none'" in header and "frame-ancestors 'self'" in header, header
    page.wait_for_load_state("load")
    assert_no_payload_ran(page)
    # Formgrader's own scripts run: the name toggle (inline handler, allowed by hash) and a
    # comment typed into the view is saved through its API.
    page.locator("span.name-hidden").first.click()
    expect(page.locator("a.name-shown").first).to_be_visible()
    comment = page.locator("textarea.comment").first
    expect(comment).to_have_attribute("placeholder", re.compile("."))  # its view is bound
    with page.expect_response(lambda r: "/formgrader/api/comment/" in r.url) as saved:
        comment.fill("checked by the browser test")
        comment.press("Tab")
    assert saved.value.ok
    with course.gradebook() as gb:
        notebook = gb.find_submission_notebook(name, lab.released, "trudy")
        assert "checked by the browser test" in [c.manual_comment for c in notebook.comments]
    shot(page, "09-formgrader-payloads")
    assert not dialogs

    feedback = browser.new_page()  # a file, as the student opens it (no loopback-only route)
    feedback.on("dialog", lambda d: (dialogs.append(d.message), d.dismiss()))
    try:
        feedback.goto((course.feedback("trudy", lab.released) / f"{name}.html").as_uri())
        feedback.wait_for_load_state("load")
        assert_no_payload_ran(feedback)
    finally:
        feedback.close()
    assert not dialogs


def test_formgrader_autograde_log_says_the_sandbox_and_only_what_matters(lab):
    """Formgrader's Autograde button (its API, as the button calls it) grades through the
    course's driver (dlcourse/grader/door.py) and shows the instructor its whole log: it must
    say the sandbox status and the student's result, not trace kernel messages, and note a
    changed test cell only when the student changed one."""
    from helpers import submit

    from dlcourse.grader import cells

    course, name, untouched = reference_submission(lab)
    edited = nbformat.from_dict(untouched)
    tampered = next(c for c in edited.cells if cells.is_test(c))
    tampered.source += "\nprint('my own test')"
    submit(course, lab.released, "erin", {name: untouched})
    submit(course, lab.released, "frank", {name: edited})

    logs = {}
    for student in ("erin", "frank"):
        url = f"{lab.base}/formgrader/api/submission/{lab.released}/{student}/autograde"
        result = json.loads(get(url, lab.token, timeout=600, method="POST"))
        assert result["success"], result.get("error", "")[-3000:]
        logs[student] = result["log"]

    for student, log in logs.items():
        assert "sandbox: all protections on" in log, log
        assert f"1/1 {lab.released} {student}: ok" in log, log
        assert "msg_type" not in log and "execution_state" not in log, log[:3000]
        assert len(log.splitlines()) < 40, log[:3000]
    assert "was edited" not in logs["erin"], logs["erin"]
    note = f"test cell '{cells.grade_id(tampered)}' was edited; the original test was used"
    assert note in logs["frank"], logs["frank"]
    written = written_points(course, lab.released)  # graded by hand: 0 until then
    with course.gradebook() as gb:
        erin = gb.find_submission(lab.released, "erin")
        assert erin.score == erin.max_score - written > 0
        frank = gb.find_submission(lab.released, "frank")
        assert frank.score == frank.max_score - written  # graded with the original test


FORGED = "FORGED RUBRIC: this answer earns full marks"


def test_formgrader_grades_a_written_answer_by_hand(lab, browser, page):
    """A written answer (dlcourse/grader/written.py) graded by hand in the formgrader: the
    grading view shows the master's rubric below it, once, and not the rubric a student forged
    (a cell with rubric metadata, the box's class and grade metadata of its own, which earns
    nothing); the grader's points and comment reach the gradebook and the released feedback
    page; the formgrader's Autograde button, pressed again, keeps them."""
    from helpers import submit
    from playwright.sync_api import expect

    from dlcourse.grader import cells, written

    course, name, nb = reference_submission(lab)
    (source_nb,) = course.source_notebooks(lab.released).values()
    (gid,) = cells.written_cells(source_nb)
    rubric = written.rubrics(source_nb)[gid]
    auto, by_hand = (sum(f(source_nb).values()) for f in (cells.grade_cells, cells.written_cells))
    answer = next(c for c in nb.cells if cells.grade_id(c) == gid)
    answer.source = "Each new shape traces a new graph; my own words, not the model answer."
    forged = nbformat.v4.new_markdown_cell(
        f'<div class="dlcourse-rubric">{FORGED}</div>',
        metadata={
            "dlcourse": {"rubric_for": gid},
            "nbgrader": {"grade": True, "solution": True, "locked": False, "points": 5,
                         "grade_id": "written_forged", "schema_version": 3, "task": False},
        },
    )  # fmt: skip
    nb.cells.insert(nb.cells.index(answer) + 1, forged)
    folder = submit(course, lab.released, "wendy", {name: nb})
    # As `nbgrader submit` leaves them: Release Feedback names the page after these.
    (folder / "timestamp.txt").write_text("2026-12-01 10:00:00.000000 UTC")
    (folder / "submission_secret.txt").write_text("0f3c9a1b2d4e5f60718293a4b5c6d7e8")
    api = f"{lab.base}/formgrader/api"
    autograde = f"{api}/submission/{lab.released}/wendy/autograde"
    result = json.loads(get(autograde, lab.token, timeout=600, method="POST"))
    assert result["success"], result.get("error", "")[-3000:]
    with course.gradebook() as gb:
        submission = gb.find_submission(lab.released, "wendy")
        notebook = gb.find_submission_notebook(name, lab.released, "wendy")
        assert "written_forged" not in {g.name for g in notebook.grades}
        assert submission.max_score == auto + by_hand  # not the forged cell's 5
        assert submission.score == auto
        notebook_id = notebook.id

    page.context.set_extra_http_headers({"Authorization": f"token {lab.token}"})
    page.goto(f"{lab.base}/formgrader/submissions/{notebook_id}/")
    page.wait_for_load_state("load")
    box = page.locator(".dlcourse-rubric")
    expect(box).to_have_count(1)
    expect(box).to_contain_text(f"Rubric for {gid}")
    expect(box).to_contain_text(rubric.splitlines()[0].strip("*").strip())
    assert FORGED not in box.inner_text()
    assert FORGED in page.inner_text("body")  # the student's text, shown as theirs
    score = page.locator(f"input.score#{gid}")
    expect(score).to_have_class(re.compile("needs_manual_grade"))  # its view is bound
    with page.expect_response(lambda r: "/formgrader/api/grade/" in r.url) as saved:
        score.fill("1.5")
        score.press("Tab")
    assert saved.value.ok
    with page.expect_response(lambda r: "/formgrader/api/comment/" in r.url) as saved:
        comment = page.locator(f"textarea#{gid}-comment")
        comment.fill("Retracing per shape is right; say why it costs time in a loop.")
        comment.press("Tab")
    assert saved.value.ok
    shot(page, "10-formgrader-written-answer")

    for action in ("generate_feedback", "release_feedback"):
        url = f"{api}/assignment/{lab.released}/wendy/{action}"
        result = json.loads(get(url, lab.token, timeout=600, method="POST"))
        assert result["success"], f"{action}: " + result.get("error", "")[-3000:]
    released = [
        p for p in (lab.root / "exchange" / "dlcourse" / "feedback").glob("*.html")
        if "say why it costs time in a loop" in p.read_text()
    ]  # fmt: skip
    assert len(released) == 1, "the released feedback page has no grader's comment"
    student_sees = browser.new_page()  # the released page as the student opens it
    try:
        student_sees.goto(released[0].as_uri())
        body = student_sees.inner_text("body")
    finally:
        student_sees.close()
    assert "Retracing per shape is right; say why it costs time in a loop." in body
    assert "Score: 1.5 / 2.0" in body, body[-2000:]
    assert "Rubric for" not in body and "dlcourse-rubric" not in released[0].read_text()

    result = json.loads(get(autograde, lab.token, timeout=600, method="POST"))
    assert result["success"], result.get("error", "")[-3000:]
    assert course.manual_scores(lab.released, "wendy") == {gid: 1.5}
    with course.gradebook() as gb:
        notebook = gb.find_submission_notebook(name, lab.released, "wendy")
        assert "say why it costs time" in {c.name: c.manual_comment for c in notebook.comments}[gid]
        assert gb.find_submission(lab.released, "wendy").score == auto + 1.5
