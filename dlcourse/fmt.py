"""`python -m dlcourse fmt [--check]`: every committed notebook in canonical form.

Walkthroughs (`notebooks/`) keep their outputs; master worksheets (`source/`) and student
versions (`release/`) are written without outputs. `--check` changes nothing and lists what
would change (exit status 1), as CI runs it.
"""

from __future__ import annotations

from pathlib import Path

import nbformat

from dlcourse.notebooks import write


def canonical(path: Path, clear_outputs: bool) -> str:
    nb = nbformat.read(path, as_version=4)
    if clear_outputs:
        for cell in nb.cells:
            if cell.cell_type == "code":
                cell.outputs = []
                cell.execution_count = None
    tmp = path.with_name(f".{path.name}.fmt")
    try:
        write(nb, tmp)
        return tmp.read_text()
    finally:
        tmp.unlink(missing_ok=True)


def targets(root: Path) -> list[tuple[Path, bool]]:
    found = [(p, False) for p in sorted(root.glob("notebooks/*.ipynb"))]
    found += [(p, True) for p in sorted(root.glob("source/*/*.ipynb"))]
    return found


def run(root: Path, check: bool) -> int:
    changed = []
    for path, clear in targets(root):
        text = canonical(path, clear)
        if text != path.read_text():
            changed.append(path)
            if not check:
                path.write_text(text)
    for path in changed:
        print(f"{'would reformat' if check else 'reformatted'} {path.relative_to(root)}")
    return 1 if check and changed else 0
