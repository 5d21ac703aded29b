"""Nothing a student wrote runs in an instructor's or a student's browser.

Feedback and formgrader render student notebooks as HTML. A Markdown cell can carry raw
HTML (`<script>`, `<img onerror=...>`), a link can be `javascript:...`, and code can
display HTML, SVG or JavaScript outputs; rendered with the instructor's session, any of
these could read the hidden tests or start kernels. `SanitizeStudentContent` runs in
autograde (so formgrader shows the sanitised copy) and again in generate_feedback: HTML in
student-editable Markdown and in outputs is reduced to harmless tags, script-bearing MIME
types are dropped, and `javascript:` URLs are neutralised. Locked cells are the course's own
(nbgrader restores them from the gradebook) and are left as written.
"""

from __future__ import annotations

import re

import bleach
from nbgrader.preprocessors import NbGraderPreprocessor

SAFE_TAGS = {
    "a", "abbr", "b", "blockquote", "br", "code", "div", "em", "h1", "h2", "h3", "h4", "hr",
    "i", "li", "ol", "p", "pre", "span", "strong", "sub", "sup", "table", "tbody", "td", "th",
    "thead", "tr", "ul",
}  # fmt: skip
SAFE_ATTRIBUTES = {"a": ["href", "title"], "td": ["colspan", "rowspan"], "th": ["colspan"]}
SAFE_PROTOCOLS = {"http", "https", "mailto"}
DROPPED_MIME = re.compile(r"javascript|ecmascript|widget|vnd\.jupyter|svg", re.IGNORECASE)
HTML_MIME = {"text/html", "text/markdown"}
SCRIPT_URL = re.compile(r"(?i)(j\s*a\s*v\s*a\s*s\s*c\s*r\s*i\s*p\s*t|vbscript|data)\s*:")


def clean_html(text: str) -> str:
    cleaned = bleach.clean(
        text, tags=SAFE_TAGS, attributes=SAFE_ATTRIBUTES, protocols=SAFE_PROTOCOLS, strip=False
    )
    return SCRIPT_URL.sub("blocked:", cleaned)


def clean_output(output: dict) -> None:
    data = output.get("data")
    if not isinstance(data, dict):
        return
    for mime in list(data):
        if DROPPED_MIME.search(mime):
            del data[mime]
            data.setdefault("text/plain", f"[{mime} output removed by the grader]")
        elif mime in HTML_MIME:
            text = data[mime]
            data[mime] = clean_html("".join(text) if isinstance(text, list) else str(text))


def is_locked(cell) -> bool:
    return bool(cell.metadata.get("nbgrader", {}).get("locked"))


class SanitizeStudentContent(NbGraderPreprocessor):
    def preprocess(self, nb, resources):
        for cell in nb.cells:
            if cell.cell_type == "markdown" and not is_locked(cell):
                cell.source = clean_html(cell.source)
                cell.pop("attachments", None)
            for output in cell.get("outputs", []):
                clean_output(output)
        return nb, resources
