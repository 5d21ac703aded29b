# ruff: noqa: E501 - the payloads are code and markup kept on one line each, as a student writes them
"""Script payloads a student can put into a submission, one class each, for the pages that
show it (feedback, formgrader's grading view): each sets `window.PWNED` if it ever runs.

`hostile_submission(release_nb, reference, last)` answers every exercise with the reference
(full marks must stay) and adds, in the `last` exercise's answer, code that displays hostile
outputs and output metadata (outputs are made by the grading kernel, so they must come from
code), plus hostile Markdown, raw and code cells, cell metadata, a cell id, attachments and
notebook metadata. It also adds what must survive: a PNG with numeric width/height and an
https link.
"""

from __future__ import annotations

import nbformat

from dlcourse.grader import cells

# A 1x1 transparent PNG.
PNG = "iVBORw0KGgoAAAANSUhEUgAAAAEAAAABCAQAAAC1HAwCAAAAC0lEQVR42mNkYAAAAAYAAjCB0C8AAAAASUVORK5CYII="
SAFE_LINK = "https://example.org/course-notes"
RUN = "window.PWNED=1"

OUTPUT_CODE = f"""
from IPython.display import HTML, display, publish_display_data as _show
_png = {PNG!r}
_show({{'image/png': _png}}, {{'image/png': {{'width': '10 onerror={RUN} ', 'height': '1 onload={RUN}'}}}})
_show({{'image/png': _png}}, {{'width': 'x onerror={RUN}', 'unconfined': 'x onerror={RUN}', 'alt': '" onerror="{RUN}'}})
_show({{'image/jpeg': _png}}, {{'image/jpeg': {{'height': 'x onerror={RUN}', 'width': [1]}}}})
_show({{'text/html': '<b>isolated</b><img src=x onerror={RUN}>'}}, {{'text/html': {{'isolated': True}}, 'needs_background': '"><img src=x onerror={RUN}>', 'unknown': {{'x': '<script>{RUN}</script>'}}}})
_show({{'image/svg+xml': '<svg xmlns="http://www.w3.org/2000/svg" onload="{RUN}"><script>{RUN}</script></svg>'}})
display(HTML('<a id="h1" href="javascript:{RUN}">h1</a> <a id="h2" href="&#106;avascript:{RUN}">h2</a> <a id="h3" href="java&#09;script:{RUN}">h3</a> <a id="h4" href=" JaVaScRiPt:{RUN}">h4</a> <a id="h5" href="data:text/html,&lt;script&gt;{RUN}&lt;/script&gt;">h5</a> <a id="h6" href="javascript&colon;{RUN}">h6</a> <img src=x onerror={RUN}>'))
_show({{'text/markdown': '[m](&#x6A;avascript:{RUN}) <img src=x onerror={RUN}>'}})
_show({{'application/javascript': '{RUN}', 'text/plain': 'js'}})
_show({{'application/vnd.jupyter.widget-view+json': {{'model_id': 'x'}}, 'text/plain': 'widget'}})
_show({{'text/latex': '<img src=x onerror={RUN}>'}})
_show({{'image/png': _png}}, {{'image/png': {{'width': 40, 'height': 30}}}})
import sys as _sys
_sys.stdout.flush(); _name = _sys.stdout.name
_sys.stdout.name = '"><img src=x onerror={RUN}>'; print('named stream'); _sys.stdout.flush()
_sys.stdout.name = _name
"""

ERROR_CODE = (
    "class _E(Exception):\n    pass\n"
    f"_E.__name__ = '<img src=x onerror={RUN}>'\n"
    f"raise _E('<img src=x onerror={RUN}>\\x1b[31m<script>{RUN}</script>')\n"
)

MARKDOWN = [
    f"[a](&#106;avascript:{RUN}) [b](&#x6A;avascript:{RUN}) [c](java&#09;script:{RUN}) "
    f"[d](javascript&colon;{RUN}) [e](JaVaScRiPt:{RUN}) [f](\x01javascript:{RUN}) "
    f"[g](javascript\\:{RUN}) [h](<java\tscript:{RUN}>) [i](data:text/html;base64,PHNjcmlwdD4=)",
    f"![img](javascript:{RUN}) <javascript:{RUN}> [ref link][r]\n\n[r]: javascript:{RUN}",
    f'<img src=x onerror="{RUN}"> ![x](x" onerror="{RUN}) '
    f'<a href="&#106;avascript:{RUN}">raw</a> <svg onload={RUN}></svg> '
    f'<iframe src="javascript:{RUN}"></iframe> <script>{RUN}</script>',
    f"Course notes: [the notes]({SAFE_LINK}). Training data: 60000 images.",
]


def _attachment_cell() -> nbformat.NotebookNode:
    cell = nbformat.v4.new_markdown_cell("![att](attachment:p.svg) ![att2](attachment:p.png)")
    cell.attachments = {
        "p.svg": {"image/svg+xml": f'<svg xmlns="http://www.w3.org/2000/svg" onload="{RUN}"/>'},
        "p.png": {"image/png": f'x" onerror="{RUN}'},
    }
    return cell


def hostile_submission(
    release_nb: nbformat.NotebookNode, reference: dict[str, str], last: str
) -> nbformat.NotebookNode:
    nb = cells.answered(release_nb, reference | {last: reference[last] + "\n" + OUTPUT_CODE})
    extra = [nbformat.v4.new_markdown_cell(text) for text in MARKDOWN]
    extra.append(_attachment_cell())
    raw = nbformat.v4.new_raw_cell(f"<img src=x onerror={RUN}>")
    raw.metadata["raw_mimetype"] = "text/html"
    extra.append(raw)
    tagged = nbformat.v4.new_markdown_cell("tagged")
    tagged.metadata.update(
        tags=[f'"><img src=x onerror={RUN}>'],
        alt=f'" onerror="{RUN}',
        anything={"html": f"<script>{RUN}</script>"},
    )
    tagged.id = "cell-with-a-plain-id"
    extra.append(tagged)
    for position, cell in enumerate(extra, start=1):
        nb.cells.insert(position, cell)
    nb.cells.append(nbformat.v4.new_code_cell(ERROR_CODE))
    nb.metadata.update(
        title=f"</title><script>{RUN}</script>",
        widgets={
            "application/vnd.jupyter.widget-state+json": {"x": f"</script><script>{RUN}</script>"}
        },
    )
    nb.metadata.setdefault("kernelspec", {})["display_name"] = f"<img src=x onerror={RUN}>"
    nb.metadata.setdefault("language_info", {})["pygments_lexer"] = f'"><img onerror={RUN}>'
    return nb


# Run in the page: what a payload left behind, if anything.
PAGE_CHECK = """() => {
  const bad = [];
  if (typeof window.PWNED !== 'undefined') bad.push('a payload ran');
  for (const el of document.querySelectorAll('*')) {
    for (const attr of el.attributes) {
      if (attr.name.startsWith('on') && attr.value.includes('PWNED')) bad.push(el.outerHTML);
    }
  }
  for (const s of document.querySelectorAll('script')) {
    if (s.textContent.includes('PWNED')) bad.push('script: ' + s.outerHTML.slice(0, 200));
  }
  for (const a of document.querySelectorAll('a[href], img[src], iframe, object, embed, svg')) {
    const url = a.href || a.src || '';
    if (['iframe', 'object', 'embed', 'svg'].includes(a.localName)) bad.push(a.outerHTML);
    else if (!/^(https?|mailto|file|data):/.test(url)) bad.push('url: ' + a.outerHTML);
    else if (url.startsWith('data:') && !/^data:image\\/(png|jpeg|gif);base64,/.test(url))
      bad.push('data url: ' + a.outerHTML.slice(0, 200));
  }
  return bad;
}"""


def assert_no_payload_ran(page) -> None:
    """In a loaded page: no payload ran or is left in the DOM, the page has its strict
    Content-Security-Policy, and the legitimate PNG (numeric size) and https link show."""
    page.wait_for_timeout(500)  # image errors and loads fire after `load`
    assert page.evaluate(PAGE_CHECK) == []
    policy = page.locator("meta[http-equiv='Content-Security-Policy']").get_attribute("content")
    assert "default-src 'none'" in policy and "'unsafe-inline'" not in policy.split("style-src")[0]
    image = page.locator("img[width='40'][height='30']")
    assert image.count() >= 1 and image.first.evaluate("i => i.complete && i.naturalWidth") == 1
    assert page.locator(f"a[href='{SAFE_LINK}']").count() == 1
