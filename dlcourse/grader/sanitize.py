"""Nothing a student wrote runs in an instructor's or a student's browser.

Feedback and formgrader render student notebooks as HTML. A Markdown cell can carry raw
HTML (`<script>`, `<img onerror=...>`), a link can be `javascript:...` (also entity-encoded,
`&#106;avascript:`, or split by a tab), code can display HTML, SVG or JavaScript outputs,
and output metadata reaches the page too: nbconvert writes an image's width and height
unquoted, so `"10 onerror=..."` adds an event handler. Rendered with the instructor's
session, any of these could read the hidden tests through the contents API.

`SanitizeStudentContent` runs in autograde (so formgrader shows the sanitised copy) and again
in generate_feedback; `sanitize_notebook` is its whole work, and the course's page exporter
(dlcourse/grader/safe_page.py) runs it once more on whatever notebook it renders:

- Markdown a student can edit: raw HTML reduced to harmless tags (bleach), link and image
  destinations whose scheme is script-capable (after entity and escape decoding, with case,
  whitespace and control characters ignored) neutralised, attachments only as PNG/JPEG;
- outputs: only known output types; stream names stdout/stderr; error fields plain text;
  only MIME types the page can show safely (HTML and Markdown outputs cleaned, images only
  as base64); metadata by allow-list: width/height numbers, `unconfined` a boolean, `alt`
  text; nothing else (`isolated` would frame the HTML);
- cell metadata by allow-list (nbgrader's, checked; tags as plain words) and notebook
  metadata by allow-list (kernelspec, language_info as plain strings).

Locked Markdown cells are the course's own (nbgrader restores them from the gradebook) and
are left as written; their rendering is still cleaned by the page exporter.
"""

from __future__ import annotations

import base64
import binascii
import html
import math
import re
from collections.abc import Callable

import bleach
from bleach.css_sanitizer import CSSSanitizer
from nbformat import NotebookNode
from nbgrader.preprocessors import NbGraderPreprocessor

SAFE_TAGS = {
    "a", "abbr", "b", "blockquote", "br", "code", "div", "em", "h1", "h2", "h3", "h4", "hr",
    "i", "li", "ol", "p", "pre", "span", "strong", "sub", "sup", "table", "tbody", "td", "th",
    "thead", "tr", "ul",
}  # fmt: skip
SAFE_ATTRIBUTES = {"a": ["href", "title"], "td": ["colspan", "rowspan"], "th": ["colspan"]}
SAFE_PROTOCOLS = {"http", "https", "mailto"}
# Schemes that run script (or can carry a page) when a browser follows them.
SCRIPT_SCHEMES = {"javascript", "vbscript", "data", "livescript"}
SAFE_IMAGE_DATA = re.compile(r"data:image/(png|jpeg|gif);base64,[A-Za-z0-9+/=\s]*", re.IGNORECASE)
URI_ATTRIBUTES = {"href", "src", "action", "formaction", "xlink:href", "poster", "background"}

SHOWN_MIME = {"text/plain", "text/html", "text/markdown", "text/latex", "image/png", "image/jpeg"}
HTML_MIME = {"text/html", "text/markdown"}
IMAGE_MIME = {"image/png", "image/jpeg"}
OUTPUT_TYPES = {"stream", "display_data", "execute_result", "error"}
STREAM_NAMES = {"stdout", "stderr"}

CELL_FLAGS = {"editable", "deletable", "collapsed"}
NBGRADER_FLAGS = {"grade", "solution", "locked", "task"}
NBGRADER_NUMBERS = {"points", "score", "schema_version"}
NBGRADER_TEXT = {"checksum", "cell_type", "comment"}
SAFE_WORD = re.compile(r"[A-Za-z0-9_.+#-]{1,100}")
SAFE_PHRASE = re.compile(r"[A-Za-z0-9_.+#() -]{1,100}")

# What a browser ignores in a URL's scheme: whitespace, control and invisible characters.
URL_NOISE = re.compile(r"[`\000-\040\177-\240\s]+|[^\x00-\x7f]")
MARKDOWN_ESCAPE = re.compile(r"\\([!-/:-@\[-`{-~])")
SCHEME = re.compile(r"([a-z][a-z0-9+.-]*):")
# Markdown link destinations, reference definitions and autolinks are delimited by these.
URL_DELIMITERS = re.compile(r"[()<>\[\]\"'\n]")
CONTROL = re.compile(r"[\x00-\x08\x0b-\x1f\x7f]")
RATIO = "\u2236"  # looks like a colon, is not one: a neutralised scheme stays readable


def url_scheme(value: str) -> str | None:
    """The scheme a browser would see in `value` (an attribute value or a Markdown link
    destination): entities and Markdown escapes decoded, noise removed, lower case."""
    normalised = URL_NOISE.sub("", MARKDOWN_ESCAPE.sub(r"\1", html.unescape(value))).lower()
    found = SCHEME.match(normalised)
    return found.group(1) if found else None


def is_safe_url(value: str, *, image: bool = False) -> bool:
    """Relative URLs, anchors and http(s)/mailto; an image may also be base64 PNG/JPEG/GIF."""
    scheme = url_scheme(value)
    if scheme is None or scheme in SAFE_PROTOCOLS:
        return True
    return image and scheme == "data" and SAFE_IMAGE_DATA.fullmatch(value.strip()) is not None


def _attribute_filter(allowed: dict[str, list[str]]) -> Callable[[str, str, str], bool]:
    def allow(tag: str, name: str, value: str) -> bool:
        if name not in allowed.get(tag, []) and name not in allowed.get("*", []):
            return False
        if name in ("class", "id") and "dlcourse-rubric" in value:
            return False  # the formgrader's rubric box (dlcourse/grader/written.py)
        return name not in URI_ATTRIBUTES or is_safe_url(value, image=tag == "img")

    return allow


def clean_html(
    text: str, tags: set[str] = SAFE_TAGS, attributes: dict[str, list[str]] = SAFE_ATTRIBUTES
) -> str:
    """`text` with only `tags` and `attributes` left as markup (the rest shown as text) and
    every URL attribute checked by `is_safe_url` (bleach's own check allows only
    http/https/mailto, plus data: for the images `is_safe_url` allows)."""
    return bleach.clean(
        text,
        tags=tags,
        attributes=_attribute_filter(attributes),
        protocols=SAFE_PROTOCOLS | {"data"},
        css_sanitizer=CSSSanitizer(),
        strip=False,
        strip_comments=True,
    )


def neutralise_script_urls(markdown: str) -> str:
    """Every stretch between Markdown's URL delimiters that a browser would read as a
    script-capable URL gets its scheme's colon replaced by a look-alike (prose such as
    "data: 1 GB" at a line's start stays readable)."""

    def fix(token: str) -> str:
        if url_scheme(token.lstrip(": \t")) not in SCRIPT_SCHEMES:
            return token
        decoded = CONTROL.sub("", MARKDOWN_ESCAPE.sub(r"\1", html.unescape(token)))
        lead = len(decoded) - len(decoded.lstrip(": \t"))
        return html.escape(decoded[:lead] + decoded[lead:].replace(":", RATIO, 1), quote=False)

    pieces = URL_DELIMITERS.split(markdown)
    if len(pieces) == 1:
        return fix(markdown)
    delimiters = URL_DELIMITERS.findall(markdown)
    out = [fix(pieces[0])]
    for delimiter, piece in zip(delimiters, pieces[1:], strict=True):
        out += [delimiter, fix(piece)]
    return "".join(out)


def clean_markdown(source: str) -> str:
    """A student's Markdown: raw HTML cleaned, script-capable link destinations neutralised."""
    return neutralise_script_urls(clean_html(source))


def _text(value) -> str:
    return "".join(value) if isinstance(value, list) else str(value)


def _number(value) -> float | int | None:
    if isinstance(value, bool) or not isinstance(value, int | float):
        return None
    return value if math.isfinite(value) and value >= 0 else None


def clean_output_metadata(metadata) -> dict:
    """Allow-list: width/height numbers, `unconfined` boolean, `alt` text; per image MIME
    type and at the top level (nbconvert looks in both)."""
    if not isinstance(metadata, dict):
        return {}

    def keep(entry: dict) -> dict:
        kept = {k: n for k in ("width", "height") if (n := _number(entry.get(k))) is not None}
        if isinstance(entry.get("unconfined"), bool):
            kept["unconfined"] = entry["unconfined"]
        if isinstance(entry.get("alt"), str):
            kept["alt"] = entry["alt"]
        return kept

    cleaned = keep(metadata)
    for mime in IMAGE_MIME:
        if isinstance(metadata.get(mime), dict) and (entry := keep(metadata[mime])):
            cleaned[mime] = entry
    return cleaned


def _is_base64(text: str) -> bool:
    try:
        base64.b64decode("".join(text.split()), validate=True)
    except (binascii.Error, ValueError):
        return False
    return True


def clean_output(output) -> NotebookNode | None:
    """The output as the page may show it, or None to drop it."""
    if not isinstance(output, dict) or output.get("output_type") not in OUTPUT_TYPES:
        return None
    kind = output["output_type"]
    if kind == "stream":
        name = output.get("name")
        return NotebookNode(
            output_type=kind,
            name=name if name in STREAM_NAMES else "stderr",  # as nbgrader would score it
            text=_text(output.get("text", "")),
        )
    if kind == "error":
        traceback = output.get("traceback")
        return NotebookNode(
            output_type=kind,
            ename=_text(output.get("ename", "")),
            evalue=_text(output.get("evalue", "")),
            traceback=[_text(line) for line in traceback] if isinstance(traceback, list) else [],
        )
    data = output.get("data") if isinstance(output.get("data"), dict) else {}
    shown = {}
    for mime, value in data.items():
        text = _text(value)
        if mime in HTML_MIME:
            shown[mime] = clean_html(text)
        elif mime in IMAGE_MIME:
            if _is_base64(text):
                shown[mime] = text
        elif mime in SHOWN_MIME:
            shown[mime] = text
        else:
            shown.setdefault("text/plain", f"[{mime} output removed by the grader]")
    cleaned = NotebookNode(
        output_type=kind, data=shown, metadata=clean_output_metadata(output.get("metadata"))
    )
    if kind == "execute_result":
        count = output.get("execution_count")
        cleaned["execution_count"] = count if isinstance(count, int) else None
    return cleaned


def clean_attachments(attachments) -> dict:
    """Only base64 PNG/JPEG images (nbconvert embeds them as data: URLs); a reference to a
    dropped one is shown by the page as a missing attachment."""
    if not isinstance(attachments, dict):
        return {}
    kept = {}
    for name, bundle in attachments.items():
        if isinstance(bundle, dict):
            images = {m: _text(d) for m, d in bundle.items() if m in IMAGE_MIME}
            if images := {m: d for m, d in images.items() if _is_base64(d)}:
                kept[name] = images
    return kept


def clean_nbgrader_metadata(meta) -> dict | None:
    if not isinstance(meta, dict):
        return None
    kept: dict = {k: meta[k] for k in NBGRADER_FLAGS if isinstance(meta.get(k), bool)}
    kept |= {k: n for k in NBGRADER_NUMBERS if (n := _number(meta.get(k))) is not None}
    kept |= {k: meta[k] for k in NBGRADER_TEXT if isinstance(meta.get(k), str)}
    grade_id = meta.get("grade_id")
    if isinstance(grade_id, str):  # nbgrader's schema allows [A-Za-z0-9_-]; keep it so
        kept["grade_id"] = re.sub(r"[^A-Za-z0-9_-]", "_", grade_id)
    return kept


def clean_cell_metadata(metadata) -> dict:
    """Allow-list: nbgrader's (checked), tags (plain words), a few booleans."""
    if not isinstance(metadata, dict):
        return {}
    kept: dict = {k: metadata[k] for k in CELL_FLAGS if isinstance(metadata.get(k), bool)}
    if "nbgrader" in metadata:
        kept["nbgrader"] = clean_nbgrader_metadata(metadata["nbgrader"])
    tags = metadata.get("tags")
    if isinstance(tags, list):
        kept["tags"] = [t for t in tags if isinstance(t, str) and SAFE_WORD.fullmatch(t)]
    return kept


def clean_notebook_metadata(metadata) -> dict:
    """Allow-list: kernelspec and language_info, plain strings only (the page's language
    and code highlighting); no title, no widget state."""
    if not isinstance(metadata, dict):
        return {}
    kept = {}
    for key in ("kernelspec", "language_info"):
        entry = metadata.get(key)
        if isinstance(entry, dict):
            kept[key] = {
                k: v for k, v in entry.items() if isinstance(v, str) and SAFE_PHRASE.fullmatch(v)
            }
    return kept


def is_locked(cell) -> bool:
    meta = cell.get("metadata", {}).get("nbgrader")
    return isinstance(meta, dict) and bool(meta.get("locked"))


def sanitize_notebook(nb: NotebookNode) -> NotebookNode:
    """Everything a student controls in `nb`, cleaned in place (see the module's text)."""
    nb.metadata = NotebookNode(clean_notebook_metadata(nb.get("metadata")))
    for cell in nb.cells:
        locked = is_locked(cell)
        if "id" in cell:  # nbformat's own pattern; the page writes it into an attribute
            cell.id = re.sub(r"[^A-Za-z0-9_-]", "_", _text(cell.id))[:64] or "cell"
        cell.metadata = NotebookNode(clean_cell_metadata(cell.get("metadata")))
        if cell.cell_type == "markdown" and not locked:
            cell.source = clean_markdown(_text(cell.source))
            attachments = clean_attachments(cell.get("attachments"))
            cell.pop("attachments", None)
            if attachments:
                cell.attachments = attachments
        elif cell.cell_type == "raw":
            cell.source = clean_html(_text(cell.source))
        if "outputs" in cell:
            cleaned = (clean_output(output) for output in cell.outputs)
            cell.outputs = [output for output in cleaned if output is not None]
    return nb


class SanitizeStudentContent(NbGraderPreprocessor):
    def preprocess(self, nb, resources):
        return sanitize_notebook(nb), resources
