"""Run notebooks headless and write them in canonical form (no stray metadata)."""

from __future__ import annotations

import os
import re
import subprocess
from pathlib import Path

import nbformat
from nbclient import NotebookClient

from dlcourse import kernel_env, settings

KERNELSPEC = {"display_name": "Python 3 (ipykernel)", "language": "python", "name": "python3"}
# Keys a committed notebook may carry: tensorflow/docs keep only what renders the notebook.
NOTEBOOK_METADATA_KEYS = {"kernelspec", "colab", "accelerator"}
# "dlcourse": a master's rubric cell (dlcourse/grader/written.py), never in release/.
CELL_METADATA_KEYS = {"nbgrader", "tags", "id", "dlcourse"}
# Walkthroughs run headless with quick settings (what CI compares), a fixed hash seed and the
# course's quiet TensorFlow; a stderr output made only of TensorFlow's own log lines is dropped.
QUICK_ENV = {settings.QUICK: "1", "PYTHONHASHSEED": "0"} | settings.QUIET_TF
TF_LOG_ONLY = re.compile(kernel_env.TF_LOG_ONLY)


def read(path: Path) -> nbformat.NotebookNode:
    return nbformat.read(path, as_version=4)


def clean(nb: nbformat.NotebookNode) -> nbformat.NotebookNode:
    """Drop execution timing, widget state and other editor noise; python3 kernelspec."""
    nb.metadata = nbformat.from_dict(
        {k: v for k, v in nb.metadata.items() if k in NOTEBOOK_METADATA_KEYS}
    )
    nb.metadata["kernelspec"] = dict(KERNELSPEC)
    nb.metadata["language_info"] = {"name": "python"}
    for cell in nb.cells:
        cell.metadata = nbformat.from_dict(
            {k: v for k, v in cell.metadata.items() if k in CELL_METADATA_KEYS}
        )
        if cell.cell_type == "code":
            for output in cell.get("outputs", []):
                if "metadata" in output:
                    output["metadata"] = {}
    return nb


def drop_tf_log_outputs(nb: nbformat.NotebookNode) -> nbformat.NotebookNode:
    """Remove stderr outputs that consist only of TensorFlow's start-up log lines."""
    for cell in nb.cells:
        if cell.cell_type == "code":
            cell.outputs = [
                o
                for o in cell.get("outputs", [])
                if not (
                    o.get("output_type") == "stream"
                    and o.get("name") == "stderr"
                    and TF_LOG_ONLY.match(o.get("text", ""))
                )
            ]
    return nb


def write(nb: nbformat.NotebookNode, path: Path) -> None:
    """nbformat's canonical JSON: sorted keys, one-space indent, trailing newline."""
    nbformat.validate(nb)
    nbformat.write(clean(nb), path)


def execute(
    path: Path,
    *,
    timeout: int = 600,
    env: dict[str, str] | None = None,
    cwd: Path | None = None,
    extra_cells: tuple[str, ...] = (),
) -> nbformat.NotebookNode:
    """Execute a notebook in quick mode (the CI settings) and return it with outputs.

    `env` overrides the quick-mode variables (`{"DLCOURSE_QUICK": "0"}` trains for real);
    `extra_cells` are run after the notebook's own cells, in the same kernel.
    """
    nb = read(path)
    nb.cells += [nbformat.v4.new_code_cell(code) for code in extra_cells]
    saved = {k: os.environ.get(k) for k in QUICK_ENV | (env or {})}
    os.environ.update(QUICK_ENV | (env or {}))
    try:
        client = NotebookClient(
            nb,
            timeout=timeout,
            kernel_name="python3",
            resources={"metadata": {"path": str(cwd or path.parent)}},
            record_timing=False,
        )
        # The kernel's own start-up chatter (not its cells' output) stays off the terminal.
        client.execute(stderr=subprocess.DEVNULL)
    finally:
        for k, v in saved.items():
            if v is None:
                os.environ.pop(k, None)
            else:
                os.environ[k] = v
    return drop_tf_log_outputs(nb)


def walkthroughs(root: Path) -> list[Path]:
    return sorted((root / "notebooks").glob("*.ipynb"))
