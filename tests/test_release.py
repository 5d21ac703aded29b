"""release/ must be exactly what `make release` generates from source/."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from helpers import REPO, generated_course

from dlcourse.grader.course import Course


def assignments(root: Path) -> list[str]:
    return Course(root).assignments()


def tree(root: Path) -> dict[str, object]:
    """Relative path -> parsed notebook JSON (or bytes for other files)."""
    files = {}
    for path in sorted(p for p in root.rglob("*") if p.is_file()):
        rel = str(path.relative_to(root))
        files[rel] = json.loads(path.read_text()) if path.suffix == ".ipynb" else path.read_bytes()
    return files


def test_release_has_exactly_the_source_worksheets():
    released = sorted(p.name for p in (REPO / "release").iterdir() if p.is_dir())
    assert released == assignments(REPO), "run `make release`"


@pytest.mark.slow
@pytest.mark.parametrize("worksheet", assignments(REPO))
def test_release_is_in_sync_with_source(worksheet, tmp_path):
    course = generated_course(tmp_path / "course", [worksheet])
    fresh = tree(course.release(worksheet))
    committed = tree(REPO / "release" / worksheet)
    assert fresh.keys() == committed.keys(), "release/ is stale: run `make release`"
    for name in fresh:
        assert fresh[name] == committed[name], (
            f"release/{worksheet}/{name} is stale: run `make release`"
        )
