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
    nb = nbformat.read(path, as_version=4)
    grade_ids = []
    graded = 0
    for cell in nb.cells:
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
                assert cell.cell_type == "code", "manually graded cells are not used"
    assert len(grade_ids) == len(set(grade_ids)), "duplicate grade_id"
    assert graded > 0
