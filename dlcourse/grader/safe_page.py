"""The pages that show a student's notebook: feedback and formgrader's grading view.

Both are rendered by nbconvert's HTMLExporter with nbgrader's templates. `CourseHTMLExporter`
is that exporter with three more guards, so a gap in one is caught by the next:

1. the notebook it renders is cleaned once more (`sanitize_notebook`: outputs, output and
   cell metadata, notebook metadata), whatever preprocessors ran before;
2. every Markdown rendering (cells, instructors' comments) goes through the HTML sanitiser
   after Markdown has become HTML, with each URL's scheme checked after entity decoding;
3. the page carries a Content-Security-Policy, as the first thing in its <head>, that
   allows no inline script and no inline event handler except the template's own: the
   template is rendered once more with an empty notebook, and only the inline scripts and
   handlers found there are allowed, by hash. So nbgrader's formgrader keeps its scripts, and
   anything that came with the student's notebook does not run. External scripts: the
   server's own (formgrader's static files) and MathJax from the CDN the template names.

`use_safe_pages()` (nbgrader_config.py) makes feedback (`GenerateFeedback.exporter_class`,
set there) and the formgrader (its exporter, and the same policy as an HTTP header on the
grading view) use it, at every door: the course's driver, plain `nbgrader generate_feedback`,
the formgrader's buttons, `make lab`, and the hub's formgrader service.
"""

from __future__ import annotations

import base64
import copy
import hashlib
import html
import re
import sys
from html.parser import HTMLParser
from pathlib import Path

import nbformat
from jinja2 import pass_context
from nbconvert.exporters import HTMLExporter
from nbconvert.filters.markdown_mistune import InvalidNotebook

from dlcourse.grader.sanitize import clean_html, sanitize_notebook

PAGE_TAGS = {
    "a", "abbr", "b", "blockquote", "br", "code", "dd", "del", "details", "div", "dl", "dt",
    "em", "h1", "h2", "h3", "h4", "h5", "h6", "hr", "i", "img", "kbd", "li", "ol", "p", "pre",
    "s", "span", "strong", "sub", "summary", "sup", "table", "tbody", "td", "th", "thead",
    "tr", "ul",
}  # fmt: skip
PAGE_ATTRIBUTES = {
    "*": ["class", "id", "title"],
    "a": ["href"],
    "img": ["src", "alt", "width", "height"],
    "td": ["colspan", "rowspan", "style"],
    "th": ["colspan", "rowspan", "style"],
}
# MathJax 2 (nbconvert's mathjax macro) loads from here, and its parts from the same tree.
MATHJAX_CDN = "https://cdnjs.cloudflare.com/ajax/libs/mathjax/"
EXECUTABLE_SCRIPT = {"", "text/javascript", "application/javascript", "module"}
HEAD = re.compile(r"<head\b[^>]*>", re.IGNORECASE)
META = '<meta http-equiv="Content-Security-Policy" content="{}">'
META_POLICY = re.compile(r'<meta http-equiv="Content-Security-Policy" content="([^"]*)">')


class _InlineCode(HTMLParser):
    """Inline scripts (executable types only) and inline event handlers of a page."""

    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.scripts: list[str] = []
        self.handlers: list[str] = []
        self._script: list[str] | None = None

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        self.handlers += [v or "" for k, v in attrs if k.startswith("on")]
        values = dict(attrs)
        if tag == "script" and "src" not in values:
            kind = (values.get("type") or "").strip().lower()
            self._script = [] if kind in EXECUTABLE_SCRIPT else None

    def handle_data(self, data: str) -> None:
        if self._script is not None:
            self._script.append(data)

    def handle_endtag(self, tag: str) -> None:
        if tag == "script" and self._script is not None:
            self.scripts.append("".join(self._script))
            self._script = None


def _hash(text: str) -> str:
    digest = base64.b64encode(hashlib.sha256(text.encode()).digest()).decode()
    return f"'sha256-{digest}'"


def page_policy(template_page: str) -> str:
    """The Content-Security-Policy for pages rendered by the template that rendered
    `template_page` (with an empty notebook): its own inline code, by hash, and nothing
    else inline."""
    found = _InlineCode()
    found.feed(template_page)
    found.close()
    hashes = sorted({_hash(s) for s in found.scripts})
    handlers = sorted({_hash(h) for h in found.handlers})
    script = ["'self'", MATHJAX_CDN, *hashes, *(["'unsafe-hashes'", *handlers] if handlers else [])]
    return "; ".join(
        [
            "default-src 'none'",
            f"script-src {' '.join(script)}",
            "style-src 'self' 'unsafe-inline' https://cdnjs.cloudflare.com",
            "img-src 'self' data: https:",
            "font-src 'self' data: https://cdnjs.cloudflare.com",
            "connect-src 'self'",
            "object-src 'none'",
            "frame-src 'none'",
            "base-uri 'none'",
            "form-action 'self'",
        ]
    )


def with_policy(page: str, policy: str) -> str:
    """`page` with `policy` as a <meta> first in its <head>."""
    head = HEAD.search(page)
    if head is None:
        raise ValueError("the page has no <head> to put its Content-Security-Policy in")
    return page[: head.end()] + "\n" + META.format(policy) + page[head.end() :]


def policy_of(page: str) -> str | None:
    """The policy `with_policy` put into `page`, if any."""
    found = META_POLICY.search(page)
    return found.group(1) if found else None


TEMPLATES = Path(__file__).resolve().parent / "templates"
FORMGRADE = "dlcourse_formgrade"  # nbgrader's formgrade page + the written answers' rubrics


class CourseHTMLExporter(HTMLExporter):
    """nbconvert's HTML exporter, with the guards in this module's text. Where the formgrader
    renders its grading view (template "formgrade"), the course's `dlcourse_formgrade`
    template, which adds each written answer's rubric from the master copy
    (dlcourse/grader/written.py); nothing else renders rubrics."""

    def __init__(self, *args, **kw):
        super().__init__(*args, **kw)
        if self.template_name == "formgrade":
            self.extra_template_basedirs = [str(TEMPLATES), *self.extra_template_basedirs]
            self.template_name = FORMGRADE
            # nbconvert computes the search path once: again, with this template first, and
            # the base folders, so that the page can extend 'formgrade/index.html.j2'.
            bases = [b for b in self.extra_template_basedirs if b not in self.extra_template_paths]
            self.extra_template_paths = [*self.extra_template_paths, *bases]
            self.template_paths = self._template_paths()

    def _rubrics(self, resources) -> dict[str, str]:
        """The formgrader's view of one submission: its notebook's rubrics from source/."""
        from nbgrader.coursedir import CourseDirectory

        from dlcourse.grader.written import master_rubrics

        if self.template_name != FORMGRADE or "submission_id" not in resources:
            return {}
        root = CourseDirectory(config=self.config).root
        assignment, notebook = resources.get("assignment_id"), resources.get("notebook_id")
        if not (isinstance(assignment, str) and isinstance(notebook, str)):
            return {}
        return master_rubrics(root, assignment, notebook)

    def _preprocess(self, nb, resources):
        nb, resources = super()._preprocess(nb, resources)
        return sanitize_notebook(nb), resources

    @pass_context
    def markdown2html(self, context, source):
        try:
            rendered = super().markdown2html(context, source)
        except InvalidNotebook as err:  # e.g. a link to an attachment the cell does not have
            rendered = f"<p><em>[not shown: {err}]</em></p><pre>{html.escape(source)}</pre>"
        return clean_html(rendered, PAGE_TAGS, PAGE_ATTRIBUTES)

    def from_notebook_node(self, nb, resources=None, **kw):
        resources = dict(resources or {})
        resources["dlcourse_rubrics"] = self._rubrics(resources)
        page, resources = super().from_notebook_node(nb, resources, **kw)
        empty = nbformat.v4.new_notebook()
        template_page = self.template.render(nb=empty, resources=copy.copy(resources))
        return with_policy(page, page_policy(template_page)), resources


FORMGRADER = "nbgrader.server_extensions.formgrader.formgrader"


def use_safe_pages() -> None:
    """In a Jupyter server running nbgrader's formgrader: its grading view renders with
    `CourseHTMLExporter` and sends the page's policy as an HTTP header too (adding
    `frame-ancestors 'self'`, Jupyter's own default, which a <meta> cannot carry).

    Runs from nbgrader_config.py, which the formgrader extension loads before it builds its
    exporter; outside a server it does nothing (and imports nothing)."""
    formgrader = sys.modules.get(FORMGRADER)
    if formgrader is None or formgrader.HTMLExporter is CourseHTMLExporter:
        return
    from nbgrader.server_extensions.formgrader.handlers import SubmissionHandler
    from tornado.web import RequestHandler

    formgrader.HTMLExporter = CourseHTMLExporter

    def write(self, chunk) -> None:
        if isinstance(chunk, str) and (policy := policy_of(chunk)):
            self.set_header("Content-Security-Policy", f"{policy}; frame-ancestors 'self'")
        RequestHandler.write(self, chunk)

    SubmissionHandler.write = write
