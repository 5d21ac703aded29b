"""Notebook hygiene: canonical JSON, no stray metadata, balanced nbgrader markup."""

from __future__ import annotations

from pathlib import Path

import nbformat
import pytest

from dlcourse.notebooks import CELL_METADATA_KEYS, KERNELSPEC, NOTEBOOK_METADATA_KEYS

REPO = Path(__file__).resolve().parent.parent
COMMITTED = sorted(
    [*REPO.glob("notebooks/*.ipynb"), *REPO.glob("source/*/*.ipynb")],
)
ALL = COMMITTED + sorted(REPO.glob("release/*/*.ipynb"))
MASTERS = sorted(REPO.glob("source/*/*.ipynb"))
PAIRS = [
    ("### BEGIN SOLUTION", "### END SOLUTION"),
    ("### BEGIN HIDDEN TESTS", "### END HIDDEN TESTS"),
]


def ids(paths):
    return [str(p.relative_to(REPO)) for p in paths]


@pytest.mark.parametrize("path", ALL, ids=ids(ALL))
def test_canonical_json(path):
    text = path.read_text()
    nb = nbformat.reads(text, as_version=4)
    nbformat.validate(nb)
    assert text == nbformat.writes(nb) + "\n", "not canonical: write it with dlcourse.notebooks"


@pytest.mark.parametrize("path", COMMITTED, ids=ids(COMMITTED))
def test_no_stray_metadata(path):
    nb = nbformat.read(path, as_version=4)
    assert set(nb.metadata) <= NOTEBOOK_METADATA_KEYS | {"language_info"}
    assert nb.metadata["kernelspec"] == KERNELSPEC
    for cell in nb.cells:
        assert set(cell.metadata) <= CELL_METADATA_KEYS, cell.metadata
        for output in cell.get("outputs", []):
            assert not output.get("metadata"), "output metadata (e.g. timings) committed"
            assert "application/vnd.jupyter.widget-view+json" not in output.get("data", {})


@pytest.mark.parametrize("path", COMMITTED, ids=ids(COMMITTED))
def test_first_code_cell_detects_the_device(path):
    nb = nbformat.read(path, as_version=4)
    first = next(c for c in nb.cells if c.cell_type == "code")
    assert "setup()" in first.source and "from dlcourse import" in first.source


@pytest.mark.parametrize("path", MASTERS, ids=ids(MASTERS))
def test_master_copies_have_no_outputs(path):
    """nbval runs them (they must execute cleanly) but there is nothing to compare."""
    nb = nbformat.read(path, as_version=4)
    assert all(not c.get("outputs") for c in nb.cells if c.cell_type == "code")


@pytest.mark.parametrize("path", MASTERS, ids=ids(MASTERS))
def test_nbgrader_markup(path):
    from dlcourse.grader.cells import is_written
    from dlcourse.grader.written import rubric_for

    nb = nbformat.read(path, as_version=4)
    grade_ids = []
    graded = 0
    for i, cell in enumerate(nb.cells):
        meta = cell.metadata.get("nbgrader")
        for begin, end in PAIRS:
            lines = [ln.strip() for ln in cell.source.splitlines()]
            opened = [i for i, ln in enumerate(lines) if ln == begin]
            closed = [i for i, ln in enumerate(lines) if ln == end]
            assert len(opened) == len(closed), f"unbalanced {begin!r} in {cell.source[:60]!r}"
            assert all(o < c for o, c in zip(opened, closed, strict=True))
            if opened and begin.endswith("SOLUTION"):
                assert meta and meta.get("solution"), "solution region outside a solution cell"
            if opened and begin.endswith("TESTS"):
                assert meta and meta.get("grade"), "hidden tests outside a graded cell"
        if meta:
            grade_ids.append(meta["grade_id"])
            if meta.get("grade"):
                graded += 1
                assert float(meta["points"]) > 0, f"{meta['grade_id']} has no points"
                if cell.cell_type == "markdown":  # a written question (grader/written.py)
                    assert meta.get("solution") and not meta.get("locked"), meta
                    assert meta["grade_id"].startswith("written_"), meta["grade_id"]
                    after = nb.cells[i + 1] if i + 1 < len(nb.cells) else None
                    assert after is not None and rubric_for(after) == meta["grade_id"], (
                        f"{meta['grade_id']}: the next cell should be its rubric"
                    )
        if rubric_for(cell) is not None:
            assert not meta and cell.cell_type == "markdown", "a rubric is plain Markdown"
            assert i > 0 and is_written(nb.cells[i - 1]), "a rubric follows its written answer"
    assert len(grade_ids) == len(set(grade_ids)), "duplicate grade_id"
    assert graded > 0


@pytest.mark.parametrize("path", MASTERS, ids=ids(MASTERS))
def test_every_test_cell_is_decided_by_the_grader(path):
    """A test cell's verdict must come from values its hidden tests record for the grader
    (dlcourse.probe), never from asserts alone, which the student's kernel can subvert."""
    from dlcourse.grader.cells import grade_id, is_test
    from dlcourse.grader.decide import visible_part

    nb = nbformat.read(path, as_version=4)
    for cell in nb.cells:
        if not is_test(cell):
            continue
        shown, hidden = visible_part(cell.source)
        assert hidden, f"{grade_id(cell)}: no hidden tests"
        hidden_source = cell.source[len(shown) :] if cell.source.startswith(shown) else cell.source
        assert "record" in hidden_source and "dlcourse.probe" in cell.source, (
            f"{grade_id(cell)}: its hidden tests record nothing for the grader"
        )


@pytest.mark.parametrize("path", MASTERS, ids=ids(MASTERS))
def test_header_points_match_the_graded_cells(path):
    """The points the worksheet's prose announces are the points nbgrader awards."""
    import re

    nb = nbformat.read(path, as_version=4)
    graded = [c for c in nb.cells if c.metadata.get("nbgrader", {}).get("grade")]
    total = sum(float(c.metadata["nbgrader"]["points"]) for c in graded)
    title = nb.cells[0].source
    announced = re.search(r"\((\d+) points\)", title)
    assert announced, "the title cell should announce the total, e.g. '(16 points)'"
    assert float(announced.group(1)) == total
    for cell in nb.cells:
        heading = re.match(r"## Exercise \d+: .*\((\d+) points?\)", cell.source)
        if cell.cell_type != "markdown" or not heading:
            continue
        following = nb.cells[nb.cells.index(cell) + 1 :]
        tests = []
        for nxt in following:
            if nxt.cell_type == "markdown" and nxt.source.startswith("## "):
                break
            if nxt.metadata.get("nbgrader", {}).get("grade"):
                tests.append(float(nxt.metadata["nbgrader"]["points"]))
        assert sum(tests) == float(heading.group(1)), cell.source.splitlines()[0]
