"""The committed walkthroughs carry full-mode outputs; CI compares against a quick baseline.

`python -m dlcourse outputs` executes every walkthrough twice from the same cells: full mode into
notebooks/ (what readers see), quick mode into tests/walkthroughs_quick/ (what nbval compares
against in CI). These tests check that the two agree, that neither is stale or hand-edited
(JupyterLab's autosave included), and that the committed full-mode results meet the course's
quality targets.
"""

from __future__ import annotations

import json
import re
import shutil
from pathlib import Path

import nbformat
import pytest

from dlcourse import outputs
from dlcourse.notebooks import CELL_METADATA_KEYS, KERNELSPEC, NOTEBOOK_METADATA_KEYS, walkthroughs

REPO = Path(__file__).resolve().parent.parent
BASELINES = outputs.baselines(REPO)


def test_every_walkthrough_has_a_quick_baseline():
    assert [p.name for p in walkthroughs(REPO)] == [p.name for p in BASELINES]


def test_committed_outputs_are_what_the_outputs_command_wrote():
    problems = outputs.check(REPO)
    assert not problems, "\n".join(problems)


@pytest.mark.parametrize("path", BASELINES, ids=[p.name for p in BASELINES])
def test_baseline_is_canonical_and_clean(path):
    text = path.read_text()
    nb = nbformat.reads(text, as_version=4)
    assert text == nbformat.writes(nb) + "\n", "not canonical: write it with dlcourse.notebooks"
    assert set(nb.metadata) <= NOTEBOOK_METADATA_KEYS | {"language_info"}
    assert nb.metadata["kernelspec"] == KERNELSPEC
    for cell in nb.cells:
        assert set(cell.metadata) <= CELL_METADATA_KEYS


# --- the check itself can fail -------------------------------------------------------------


@pytest.fixture
def course(tmp_path):
    """A copy of one walkthrough, its baseline and its manifest entry."""
    name = "01_tensors.ipynb"
    (tmp_path / "notebooks").mkdir()
    base = tmp_path / outputs.BASELINE_DIR
    base.mkdir(parents=True)
    shutil.copy(REPO / "notebooks" / name, tmp_path / "notebooks" / name)
    shutil.copy(outputs.baseline_dir(REPO) / name, base / name)
    manifest = {name: outputs.load_manifest(REPO)[name]}
    (base / outputs.MANIFEST).write_text(json.dumps(manifest))
    assert outputs.check(tmp_path) == []
    return tmp_path, name


def edit(path: Path, change) -> None:
    nb = nbformat.read(path, as_version=4)
    change(nb)
    nbformat.write(nb, path)


def first_code(nb):
    return next(c for c in nb.cells if c.cell_type == "code" and "print" in c.source)


def test_check_fails_when_a_cell_changed_after_execution(course):
    root, name = course
    for folder in ("notebooks", outputs.BASELINE_DIR):  # the same edit in both copies
        edit(
            root / folder / name,
            lambda nb: setattr(first_code(nb), "source", first_code(nb).source + "\nprint(1)"),
        )
    problems = outputs.check(root)
    assert any("stale" in p for p in problems), problems


def test_check_fails_when_the_baseline_has_other_cells(course):
    root, name = course
    edit(
        root / outputs.BASELINE_DIR / name,
        lambda nb: nb.cells.append(nbformat.v4.new_markdown_cell("extra")),
    )
    problems = outputs.check(root)
    assert any("baseline's cells differ" in p for p in problems), problems


def test_check_fails_after_jupyterlab_autosave(course):
    """Opening, running a cell and saving in the lab changes the file: the check notices."""
    root, name = course

    def autosave(nb):
        nb.metadata["language_info"] = {"name": "python", "version": "3.11.7"}
        cell = first_code(nb)
        cell.execution_count = 99
        cell.metadata["execution"] = {"iopub.status.idle": "2026-11-25T10:00:00Z"}

    edit(root / "notebooks" / name, autosave)
    problems = outputs.check(root)
    assert any("not what" in p and "autosaved" in p for p in problems), problems


def test_check_fails_when_quick_outputs_are_committed_as_the_walkthrough(course):
    root, name = course
    shutil.copy(root / outputs.BASELINE_DIR / name, root / "notebooks" / name)
    problems = outputs.check(root)
    assert any("not executed in full mode" in p for p in problems), problems


# --- the full-mode results a reader sees ---------------------------------------------------


def stdout(name: str) -> str:
    nb = nbformat.read(REPO / "notebooks" / name, as_version=4)
    return "".join(
        o.get("text", "")
        for c in nb.cells
        if c.cell_type == "code"
        for o in c.get("outputs", [])
        if o.get("name") == "stdout"
    )


def numbers(pattern: str, text: str) -> list[float]:
    found = [float(m) for m in re.findall(pattern, text)]
    assert found, f"{pattern!r} not found in the committed outputs"
    return found


def test_committed_walkthroughs_meet_the_quality_targets():
    mlp = numbers(
        r"mlp\s+\d+ parameters\s+test loss [\d.]+\s+test accuracy ([\d.]+)",
        stdout("04_mnist_classifiers.ipynb"),
    )
    cnn_text = stdout("05_cnn.ipynb")
    mnist, cifar = numbers(r"test: loss [\d.]+, accuracy ([\d.]+)", cnn_text)
    ae = numbers(r"validation MSE ([\d.]+), root-mean-square", stdout("06_autoencoder.ipynb"))
    assert mlp[-1] >= 0.98, f"MNIST MLP {mlp[-1]}"
    assert mnist >= 0.992, f"MNIST CNN {mnist}"
    assert cifar >= 0.75, f"CIFAR-10 CNN {cifar}"
    assert ae[-1] <= 0.01, f"dense autoencoder validation MSE {ae[-1]}"


def test_a_prose_edit_is_synced_without_executing_but_a_code_edit_is_refused(course):
    root, name = course
    walkthrough = root / "notebooks" / name

    def reword(nb):
        prose = next(c for c in nb.cells if c.cell_type == "markdown")
        prose.source += "\n\nOne more sentence."

    edit(walkthrough, reword)
    assert outputs.check(root), "a prose edit leaves the baseline stale until synced"
    outputs.sync_markdown(walkthrough, root)
    assert outputs.check(root) == []
    baseline = nbformat.read(root / outputs.BASELINE_DIR / name, as_version=4)
    assert (
        "One more sentence." in next(c for c in baseline.cells if c.cell_type == "markdown").source
    )

    edit(walkthrough, lambda nb: setattr(first_code(nb), "source", "print('changed')"))
    with pytest.raises(SystemExit, match="code cells changed"):
        outputs.sync_markdown(walkthrough, root)
