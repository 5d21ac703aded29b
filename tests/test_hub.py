"""A whole class on a real JupyterHub (deploy/jupyterhub), loopback only, in Chromium.

As root, installed as README says (tests/hubclass.py): deploy/jupyterhub/install-hub.sh run
from a copy of this checkout (the clone) into a temporary folder, with its paths as settings;
it makes the venv everybody uses (with the proxy), the grader account (who is also the
instructor who logs in) and a staff account; `python -m dlcourse roster --unix-users` makes
three students. Every account is removed afterwards with every process it still runs (by
PID). The hub is the installed venv's, running the installed jupyterhub_config.py through
tests/hub_test_config.py (a shared test password instead of PAM).

The flow, in a real browser where a person would click:

1. student 1 logs in, sees ws01_tensors in the Assignment List, fetches it, answers (written
   through the server's contents API, as the editor saves), validates with the notebook's
   Validate button and submits from the Assignment List;
2. student 2 logs in, fetches, answers one exercise wrongly, submits;
3. students cannot reach each other's files, the course's source/ or the formgrader;
4. the instructor logs in, opens the formgrader through the hub (its assignment link leads
   to the service's file browser) and collects; a TA, staff through the Unix group the
   install made, opens the formgrader too; grading is
   first formgrader's Autograde button for student 2 (who added a cell that prints every
   environment the kernel can read: no token, secret or password of the hub, the proxy, the
   formgrader service or the grader reaches it), then `python -m dlcourse autograde` run as
   the grader account (the same path: the sandbox, bubblewrap's unprivileged path); the
   instructor releases the feedback in the formgrader, and no secret is in it either;
5. student 1 fetches the feedback and sees the full score; the grades are checked;
6. what a student can read: grep, run from a kernel on the hub by the student who never
   submitted (logged in, lab open, a kernel of their own server), over every file under the
   install's folder (the clone, the venv, the course, the exchange, the hub's state), /home,
   what appeared in /tmp and /var/tmp since the test run began, /srv and /etc, finds no line
   of a solution or a hidden test (hubclass.readable_secrets). Not searched: the rest of the
   filesystem (/usr, /opt: system and registry files, minutes to read) and this checkout,
   which is the developer's copy, not part of the install (the install's clone is the copy
   in the folder);
7. the hub's log has none of the warnings the course's config used to cause.

Screenshots and the hub's log go to artifacts/hub/ (git-ignored).
"""

from __future__ import annotations

import contextlib
import csv
import json
import os
import re
import secrets
import shutil
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path
from urllib.parse import urljoin

import nbformat
import pytest
from browsing import CHROMIUM, chromium, screenshot
from helpers import written, written_points
from hubclass import (
    REPO,
    WORKSHEET,
    Accounts,
    grep_argv,
    grep_as,
    grep_found,
    install_class,
    patterns,
    readable_secrets,
    release,
    resident_mb,
    run_as,
    secret_lines,
)
from servers import JupyterHub

from dlcourse.demo import scenarios
from dlcourse.grader import cells
from dlcourse.grader.course import Course

CONFIG = REPO / "tests" / "hub_test_config.py"
ARTIFACTS = REPO / "artifacts" / "hub"
UI = 60_000  # ms: the hub's pages, the lab, the formgrader
SPAWN = 150_000  # ms: a student's first server start on 2 busy cores
VALIDATE = 180_000  # ms: nbgrader runs the whole worksheet
PASSWORD = secrets.token_urlsafe(16)
NOTEBOOK = f"{WORKSHEET}/{WORKSHEET}.ipynb"

pytestmark = pytest.mark.slow
COLLECTED = time.time()  # before any test of this run made anything


def _needs() -> str | None:
    if os.geteuid() != 0:
        return "needs root: it creates Unix users and the hub spawns servers as them"
    if not CHROMIUM.exists():
        return f"{CHROMIUM} not installed (make system)"
    if not Path("/usr/bin/npm").exists():
        return "npm missing (make system)"
    if not Path("/usr/bin/python3.11").exists():
        return "/usr/bin/python3.11 missing (install-hub.sh's Python: Debian 12's python3.11)"
    if not shutil.which("useradd"):
        return "useradd missing"
    return None


@pytest.fixture(scope="module")
def hub_class():
    reason = _needs()
    if reason:
        if os.environ.get("CI"):
            pytest.fail(reason)
        pytest.skip(reason)
    accounts = Accounts()
    root = Path(tempfile.mkdtemp(prefix="dlcourse-hub-"))
    try:
        started = time.monotonic()
        hc = install_class(accounts, root)
        print(f"install-hub.sh and the roster took {time.monotonic() - started:.0f} s")
        env = hc.env(PASSWORD)
        release(hc, env)
        hub = JupyterHub(hc.state, env, CONFIG, hc.venv / "bin" / "jupyterhub")
        try:
            with hub:
                yield hc, hub, env
        finally:
            ARTIFACTS.mkdir(parents=True, exist_ok=True)
            if hub.log.exists():
                shutil.copy(hub.log, ARTIFACTS / "jupyterhub.log")
    finally:
        accounts.remove()
        shutil.rmtree(root, ignore_errors=True)


@pytest.fixture(scope="module")
def browser(hub_class):
    with chromium() as browser:
        yield browser


def shot(page, name: str) -> None:
    screenshot(page, ARTIFACTS, name)


@contextlib.contextmanager
def logged_in(browser, hub: JupyterHub, user: str, name: str):
    """A fresh browser context; `user` logs in on the hub's login page. Assertions on its
    pages wait up to UI (not Playwright's 5 s): lab panels open slowly on a busy server."""
    from playwright.sync_api import expect

    expect.set_options(timeout=UI)
    context = browser.new_context(viewport={"width": 1400, "height": 900})
    context.route(
        "**/*",
        lambda route: route.continue_() if route.request.url.startswith(hub.url) else route.abort(),
    )
    page = context.new_page()
    page.set_default_timeout(UI)
    try:
        page.goto(f"{hub.url}/hub/login")
        page.fill("#username_input", user)
        page.fill("#password_input", PASSWORD)
        page.click("#login_submit")
        page.wait_for_url(re.compile(rf"/user/{user}/"), timeout=SPAWN)
        yield page
    finally:
        shot(page, f"{name}-end")
        context.close()


def open_lab(page, hub: JupyterHub, user: str) -> None:
    from playwright.sync_api import expect

    page.goto(f"{hub.url}/user/{user}/lab?reset")  # a fresh workspace: the launcher
    expect(page.locator(".jp-Launcher").first).to_be_visible(timeout=SPAWN)


def assignment_list(page) -> None:
    from playwright.sync_api import expect

    page.keyboard.press("Control+Shift+C")
    palette = page.locator("#modal-command-palette")
    expect(palette).to_be_visible()
    palette.locator("input").fill("Assignment List")
    palette.locator('li[data-command="nbgrader:open-assignment-list"]').click()
    expect(page.locator("#released_assignments_list")).to_be_visible()


def fetch(page) -> None:
    from playwright.sync_api import expect

    item = page.locator("#released_assignments_list .list_item", has_text=WORKSHEET)
    expect(item).to_be_visible()
    item.locator("button", has_text="Fetch").click()
    fetched = page.locator("#fetched_assignments_list .list_item", has_text=WORKSHEET)
    expect(fetched.first).to_be_visible()


# A hostile cell a student adds: everything the grading kernel can see of its environment.
DUMP_ENVIRONMENT = """import os, pathlib
print("ENVIRONMENT", dict(os.environ))
for p in sorted(pathlib.Path("/proc").glob("[0-9]*/environ")):
    try:
        print(p, p.read_bytes())
    except OSError as err:
        print(p, type(err).__name__)"""


def answer(page, hub: JupyterHub, user: str, scenario: str, extra: tuple[str, ...] = ()) -> None:
    """Save the student's work as JupyterLab's editor does: PUT to the contents API, with the
    session's cookies and XSRF token. `scenario`: one of dlcourse.demo.scenarios; `extra`:
    code cells the student adds at the end."""
    api = f"{hub.url}/user/{user}/api/contents/{NOTEBOOK}"
    xsrf = next(c["value"] for c in page.context.cookies() if c["name"] == "_xsrf")
    headers = {"X-XSRFToken": xsrf, "Content-Type": "application/json"}
    got = page.request.get(api, headers=headers)
    assert got.ok, got.status
    fetched = nbformat.from_dict(got.json()["content"])
    source = nbformat.read(REPO / "source" / WORKSHEET / f"{WORKSHEET}.ipynb", as_version=4)
    ctx = scenarios.Context(WORKSHEET, fetched, cells.reference_answers(source))
    work = scenarios.SCENARIOS[scenario].build(ctx)
    work.cells += [nbformat.v4.new_code_cell(code) for code in extra]
    body = {"type": "notebook", "format": "json", "content": work}
    put = page.request.put(api, headers=headers, data=json.dumps(body))
    assert put.ok, put.status


def validate(page, hub: JupyterHub, user: str) -> str:
    from playwright.sync_api import expect

    page.goto(f"{hub.url}/user/{user}/lab/tree/{NOTEBOOK}")
    button = page.locator(".jp-NotebookPanel:visible .validate-button")
    expect(button).to_be_visible()
    button.click()
    dialog = page.locator(".jp-Dialog")
    expect(dialog).to_be_visible(timeout=VALIDATE)
    header = dialog.locator(".jp-Dialog-header")
    expect(header).not_to_contain_text("Validating", timeout=VALIDATE)
    text = dialog.inner_text()
    dialog.locator(".jp-mod-accept").first.click()
    return text


# Runs in a kernel of the student's own server: a shell request, its printed output back.
RUN_IN_KERNEL = """async ([base, code]) => {
  const xsrf = decodeURIComponent(
    (document.cookie.split('; ').find((c) => c.startsWith('_xsrf=')) || '=').split('=')[1]);
  const headers = {'X-XSRFToken': xsrf, 'Content-Type': 'application/json'};
  const made = await fetch(base + 'api/kernels', {method: 'POST', headers, body: '{}'});
  if (!made.ok) throw new Error('kernel not started: ' + made.status);
  const kernel = await made.json();
  const msgId = 'grep-' + Math.random().toString(16).slice(2);
  const ws = new WebSocket(base.replace(/^http/, 'ws') + 'api/kernels/' + kernel.id + '/channels');
  const out = await new Promise((resolve, reject) => {
    let text = '';
    ws.onerror = () => reject(new Error('kernel websocket failed'));
    ws.onopen = () => ws.send(JSON.stringify({
      header: {msg_id: msgId, msg_type: 'execute_request', session: msgId, username: '',
               version: '5.3', date: new Date().toISOString()},
      parent_header: {}, metadata: {}, buffers: [], channel: 'shell',
      content: {code, silent: false, store_history: false, user_expressions: {},
                allow_stdin: false, stop_on_error: true}}));
    ws.onmessage = (event) => {
      const msg = JSON.parse(event.data);
      if (msg.parent_header.msg_id !== msgId) return;
      if (msg.msg_type === 'stream') text += msg.content.text;
      if (msg.msg_type === 'error') text += msg.content.ename + ': ' + msg.content.evalue;
      if (msg.msg_type === 'status' && msg.content.execution_state === 'idle') resolve(text);
    };
  });
  ws.close();
  await fetch(base + 'api/kernels/' + kernel.id, {method: 'DELETE', headers});
  return out;
}"""


def grep_in_kernel(page, hub: JupyterHub, user: str):
    """`hubclass.grep_as`, run from a kernel of `user`'s own server on the hub (started by the
    browser page `user` is logged in on): what student code there can read. The patterns
    travel in the request, never through a file."""

    def search(who: str, patterns: str, paths: list[Path]) -> dict[str, set[str]]:
        assert who == user, (who, user)
        code = (
            "import json, subprocess\n"
            f"done = subprocess.run({grep_argv(paths)!r}, input={patterns!r},\n"
            "    capture_output=True, text=True, errors='replace')\n"
            "print('GREP' + json.dumps([done.returncode, done.stdout, done.stderr]))\n"
        )
        out = page.evaluate(RUN_IN_KERNEL, [f"{hub.url}/user/{user}/", code])
        assert out.startswith("GREP"), out[-2000:]
        return grep_found(*json.loads(out[len("GREP") :]))

    return search


def submit(page) -> None:
    from playwright.sync_api import expect

    item = page.locator("#fetched_assignments_list .list_item", has_text=WORKSHEET).first
    expect(item).to_be_visible()
    item.locator("button", has_text="Submit").click()
    submitted = page.locator("#submitted_assignments_list .list_item", has_text=WORKSHEET)
    expect(submitted.first).to_be_visible()


def student_submits(
    browser, hub, user: str, scenario: str, check: bool, extra: tuple[str, ...] = ()
) -> None:
    from playwright.sync_api import expect

    with logged_in(browser, hub, user, f"{scenario}-submit") as page:
        open_lab(page, hub, user)
        expect(page.locator(".lm-MenuBar-itemLabel", has_text="Nbgrader")).to_have_count(1)
        assignment_list(page)
        fetch(page)
        shot(page, f"{scenario}-1-fetched")
        answer(page, hub, user, scenario, extra)
        if check:
            result = validate(page, hub, user)
            shot(page, f"{scenario}-2-validated")
            assert "Success" in result, result
            print(f"{user}'s processes, resident MB (server, open worksheet's kernel):")
            print(resident_mb(user))
            open_lab(page, hub, user)
            assignment_list(page)
        submit(page)
        shot(page, f"{scenario}-3-submitted")
        # A student does not reach the course's formgrader through the hub.
        denied = page.request.get(f"{hub.url}/services/dlcourse/formgrader/api/assignments")
        assert denied.status == 403, (denied.status, denied.url)


def click_for_dialog(page, page_path: str, row_text: str, column: str, wait: int = UI) -> str:
    """Open a formgrader page, click the link in `column` of the row showing `row_text`; the
    result dialog's text."""
    from playwright.sync_api import expect

    page.goto(page.url.split("/formgrader")[0] + f"/formgrader/{page_path}")
    row = page.locator("#main-table tr", has_text=row_text)
    expect(row).to_be_visible()
    row.locator(f"td.{column} a").click()
    dialog = page.locator(".modal-dialog:visible")
    expect(dialog).to_be_visible(timeout=UI)
    expect(dialog.locator(".modal-title")).to_have_text(re.compile("Success|Error"), timeout=wait)
    text = dialog.inner_text()
    dialog.locator("button", has_text="OK").click()
    return text


def formgrader_button(page, column: str) -> str:
    """A button in ws01_tensors' row of Manage Assignments."""
    return click_for_dialog(page, "manage_assignments", WORKSHEET, column)


def autograde_button(page, student: str) -> str:
    """Formgrader's Autograde button in the student's row of Manage Submissions."""
    path = f"manage_submissions/{WORKSHEET}"
    return click_for_dialog(page, path, student, "autograde", wait=SPAWN)


SECRET_NAMES = re.compile(r"TOKEN|SECRET|PASSWORD|PASSWD|COOKIE|KEY|AUTH", re.IGNORECASE)


def _secrets(environ: dict[str, str]) -> set[str]:
    """Values of secret-like variables that look like secrets (no paths, URLs or lists)."""
    return {
        value
        for key, value in environ.items()
        if SECRET_NAMES.search(key)
        and len(value) >= 16
        and not value.startswith(("/", "http", "["))
        and not any(ch.isspace() for ch in value)
    }


def secret_values(hc, env: dict[str, str]) -> set[str]:
    """Every secret the hub, the proxy, the formgrader service and the grader's commands run
    with: values of token-, secret- and password-like variables in their environments, and
    the hub's cookie secret."""
    import psutil

    found = _secrets(env)
    for proc in psutil.process_iter(["username", "cmdline"]):
        cmd = " ".join(proc.info["cmdline"] or [])
        if "jupyterhub" in cmd or "configurable-http-proxy" in cmd:
            with contextlib.suppress(psutil.Error):
                environ = proc.environ()
                found |= {v for k, v in environ.items() if SECRET_NAMES.search(k) and len(v) >= 8}
    cookie = hc.state / "jupyterhub_cookie_secret"
    if cookie.exists():
        found.add(cookie.read_text().strip())
    return found


def leaked(secrets_: set[str], folders: list[Path]) -> list[str]:
    """Secrets found in any file under `folders` (as text, as written)."""
    hits = []
    for folder in folders:
        for path in folder.rglob("*") if folder.is_dir() else []:
            if path.is_file():
                text = path.read_text(errors="replace")
                hits += [f"{path}: ...{v[:4]}" for v in secrets_ if v in text]
    return hits


def without(checkout: Path, places: list[Path]) -> list[Path]:
    """`places`, less the folder `checkout` (the developer's or CI's clone, which may lie under
    /tmp; it is not part of the install): a place holding it is replaced by its other entries,
    level by level."""
    checkout = checkout.resolve()
    kept: list[Path] = []
    for place in places:
        place = place.resolve()
        if checkout == place:
            continue
        if not checkout.is_relative_to(place):
            kept.append(place)
            continue
        inner = place / checkout.relative_to(place).parts[0]
        others = [p for p in place.iterdir() if p.resolve() != inner]
        kept += [p for p in others if not p.is_symlink()] + without(checkout, [inner])
    return kept


@contextlib.contextmanager
def helper_not_importable(venv: Path) -> Iterator[None]:
    """The venv's kernel spec, for a while, starting kernels where `import dlcourse` fails."""
    spec = venv / "share" / "jupyter" / "kernels" / "python3" / "kernel.json"
    original = spec.read_bytes()
    launcher = (
        "import sys; sys.modules['dlcourse'] = None; "
        "from ipykernel import kernelapp; kernelapp.launch_new_instance()"
    )
    broken = json.loads(original)
    broken["argv"] = [str(venv / "bin" / "python"), "-c", launcher, "-f", "{connection_file}"]
    spec.write_text(json.dumps(broken))
    try:
        yield
    finally:
        spec.write_bytes(original)


def test_a_class_on_jupyterhub(hub_class, browser):
    from playwright.sync_api import expect

    hc, hub, env = hub_class
    s1, s2, s3 = hc.students
    start = time.monotonic()

    # 1-2. Two students work and submit: one right (validated first), one with a mistake.
    student_submits(browser, hub, s1, "ada", check=True)
    # Student 2 also adds a cell that prints every environment the grading kernel can read.
    student_submits(browser, hub, s2, "dev", check=False, extra=(DUMP_ENVIRONMENT,))

    # 3. What one student can read of the others' work and the course: nothing.
    home1 = Path(os.path.expanduser(f"~{s1}"))
    assert (home1 / NOTEBOOK).is_file()
    for who, path in (
        (s3, home1 / NOTEBOOK),
        (s2, home1),
        (s1, hc.course / "source" / WORKSHEET / f"{WORKSHEET}.ipynb"),
        (s1, hc.course / "gradebook.db"),
        (s3, hc.exchange / "dlcourse" / "inbound"),
        (s1, hc.clone / "source" / WORKSHEET / f"{WORKSHEET}.ipynb"),
        (s1, hc.clone / "tests" / "fixtures"),
        (s1, hc.state),
    ):
        done = run_as(who, "ls", "-l", str(path))
        assert done.returncode != 0, f"{who} can read {path}:\n{done.stdout}"

    # 4. The instructor: formgrader through the hub, collect; grade; release feedback.
    with logged_in(browser, hub, hc.grader, "instructor") as page:
        page.goto(f"{hub.url}/services/dlcourse/formgrader")
        expect(page.locator("#main-table td.name", has_text=WORKSHEET)).to_be_visible()
        shot(page, "instructor-1-formgrader")
        # The assignment's name links to its source/ folder in the service's file browser.
        href = page.locator("#main-table td.name a", has_text=WORKSHEET).get_attribute("href")
        folder = page.request.get(urljoin(hub.url + "/services/dlcourse/formgrader", href))
        assert folder.ok, (href, folder.status, folder.url)
        assert folder.url.endswith(f"/services/dlcourse/tree/source/{WORKSHEET}"), folder.url
        collected = formgrader_button(page, "collect")
        assert "Successfully collected" in collected, collected
        assert sorted((hc.course / "submitted").iterdir()) == sorted(
            hc.course / "submitted" / s for s in (s1, s2)
        )
        # Student 2, through the Autograde button: the formgrader service holds the hub's API
        # token (JUPYTERHUB_API_TOKEN, JPY_API_TOKEN); none of it reaches the student's code.
        secrets_ = secret_values(hc, env)
        assert len(secrets_) >= 3, "the test found no secrets to look for"
        by_button = autograde_button(page, s2)
        assert "Successfully autograded" in by_button, by_button
        dumped = hc.course / "autograded" / s2 / WORKSHEET / f"{WORKSHEET}.ipynb"
        assert "ENVIRONMENT" in dumped.read_text() and "HOME" in dumped.read_text()
        leaks = leaked(secrets_, [hc.course / "autograded" / s2])
        assert not leaks, f"graded through the button: {leaks}"
        graded = hc.as_grader(
            "-m", "dlcourse", "autograde", WORKSHEET, "--course", str(hc.course), env=env
        )
        print(graded.stdout[-3000:])
        assert graded.returncode == 0, graded.stdout[-3000:] + graded.stderr[-3000:]
        # A broken grading environment writes nothing through the hub's button either: the
        # installed kernel spec starts kernels that cannot import the course's package.
        before = written(Course(hc.course))
        with helper_not_importable(hc.venv):
            refused = autograde_button(page, s1)
        assert "Nothing was written" in refused and "dlcourse" in refused, refused
        assert written(Course(hc.course)) == before
        released = formgrader_button(page, "release-feedback")
        assert "Successfully released feedback" in released, released
        shot(page, "instructor-2-feedback-released")
    # ... nor, graded by the driver, what student 2 gets back (feedback in the exchange).
    assert "ENVIRONMENT" in dumped.read_text()
    leaks = leaked(
        secrets_, [hc.course / "autograded" / s2, hc.course / "feedback" / s2, hc.exchange]
    )
    assert not leaks, f"graded by the driver, released: {leaks}"

    # The TA: staff through the Unix group install-hub.sh made (the hub runs without
    # DLCOURSE_HUB_STAFF, as after a restart), reaches the formgrader.
    with logged_in(browser, hub, hc.staff, "ta") as page:
        page.goto(f"{hub.url}/services/dlcourse/formgrader")
        expect(page.locator("#main-table td.name", has_text=WORKSHEET)).to_be_visible()

    # The grades: full marks, fewer marks, none (enrolled, never submitted).
    with (hc.course / "grades.csv").open() as fh:
        grades = {row["student_id"]: row for row in csv.DictReader(fh)}
    top = float(grades[s1]["max_score"])
    # Written answers are graded by hand (none graded here): they count 0 until then.
    auto = top - written_points(Course(REPO), WORKSHEET)
    assert float(grades[s1]["score"]) == auto > 0
    assert 0 < float(grades[s2]["score"]) < auto
    assert float(grades[s3]["score"]) == 0

    # 5. Student 1 fetches the feedback and sees the score.
    with logged_in(browser, hub, s1, "ada-feedback") as page:
        open_lab(page, hub, s1)
        assignment_list(page)
        item = page.locator("#submitted_assignments_list .list_item", has_text=WORKSHEET).first
        item.locator("button", has_text="Fetch Feedback").click()
        link = item.locator("a", has_text="view feedback")
        expect(link).to_be_visible()
        shot(page, "ada-feedback-1-fetched")
        feedback = sorted(home1.glob(f"{WORKSHEET}/feedback/*/{WORKSHEET}.html"))
        assert len(feedback) == 1, feedback
        path = feedback[0].relative_to(home1)
        page.goto(f"{hub.url}/user/{s1}/files/{path}")
        expect(page.locator("body")).to_contain_text(f"{auto} / {top}")
        shot(page, "ada-feedback-2-html")

    print(f"class flow took {time.monotonic() - start:.0f} s after the hub started")

    # 6. What a student can read, as that student: no solution, no hidden test.
    searched = time.monotonic()
    shown = grep_as(None, patterns(secret_lines()), [hc.clone / "source"])
    assert len(shown) >= 5, f"the search finds nothing even in source/ as root: {shown}"
    # The scratch folders: what appeared there since this test run began (what a machine's
    # earlier users left in /tmp is not part of the install).
    scratch = [p for t in ("/tmp", "/var/tmp") for p in Path(t).iterdir()]
    fresh = [p for p in scratch if not p.is_symlink() and p.lstat().st_ctime >= COLLECTED]
    places = [hc.root, Path("/home"), *fresh, Path("/srv"), Path("/etc")]
    with logged_in(browser, hub, s3, "search") as page:  # from a kernel of s3's own server
        open_lab(page, hub, s3)
        leaks = readable_secrets(s3, without(REPO, places), grep_in_kernel(page, hub, s3))
    assert not leaks, f"{s3} can read solution or hidden-test lines: {leaks}"
    print(f"searching what {s3} can read took {time.monotonic() - searched:.0f} s")

    # 7. The hub's log: none of the warnings the course's configuration used to cause.
    log = hub.log.read_text(errors="replace")
    for warning in ("extra_template_paths", "Formgrader config is not serializable"):
        assert warning not in log, warning
