"""`python -m dlcourse outputs`: re-execute the walkthroughs and write them canonically.

Every walkthrough is executed twice from the same source:

- in **full mode** (`DLCOURSE_QUICK=0`, the class settings, real data) into `notebooks/`:
  the outputs a reader sees on GitHub or in JupyterLab;
- in **quick mode** (`DLCOURSE_QUICK=1`, the CI settings) into `tests/walkthroughs_quick/`:
  the baseline nbval compares against in CI, where full training is unaffordable.

A manifest, `tests/walkthroughs_quick/outputs.json`, records for each walkthrough a digest of
its source cells and of both written files. `check()` (run by tests/test_walkthrough_outputs.py)
fails when a committed notebook is stale with respect to its source, when the two copies'
sources differ, or when a committed file is not byte-for-byte what this command wrote (for
instance after JupyterLab's autosave).
"""

from __future__ import annotations

import argparse
import hashlib
import json
import time
from pathlib import Path

import nbformat

from dlcourse.notebooks import execute, read, walkthroughs, write


def repo_root() -> Path:
    from dlcourse.grader.course import Course

    return Course.at().root


BASELINE_DIR = Path("tests") / "walkthroughs_quick"
MANIFEST = "outputs.json"
# quick first: a broken cell shows up in a minute, not after the full run
MODES = {"quick": {"DLCOURSE_QUICK": "1"}, "full": {"DLCOURSE_QUICK": "0"}}
FULL_BANNER = "training cells use full settings"
QUICK_BANNER = "training cells use quick settings"
REGENERATE = "python -m dlcourse outputs"


def baseline_dir(root: Path | None = None) -> Path:
    root = root or repo_root()
    return root / BASELINE_DIR


def baselines(root: Path | None = None) -> list[Path]:
    root = root or repo_root()
    return sorted(baseline_dir(root).glob("*.ipynb"))


def sources(nb: nbformat.NotebookNode) -> list[tuple[str, str]]:
    """What a notebook *is*, outputs aside: the type and source of every cell, in order."""
    return [(cell.cell_type, cell.source) for cell in nb.cells]


def sources_digest(nb: nbformat.NotebookNode) -> str:
    return hashlib.sha256(json.dumps(sources(nb)).encode()).hexdigest()


def file_digest(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def load_manifest(root: Path | None = None) -> dict:
    root = root or repo_root()
    path = baseline_dir(root) / MANIFEST
    return json.loads(path.read_text()) if path.exists() else {}


def save_manifest(manifest: dict, root: Path | None = None) -> None:
    root = root or repo_root()
    path = baseline_dir(root) / MANIFEST
    path.write_text(json.dumps(manifest, indent=1, sort_keys=True) + "\n")


def banner(nb: nbformat.NotebookNode) -> str:
    """The stdout of the first code cell (the device banner printed by `setup()`)."""
    first = next(c for c in nb.cells if c.cell_type == "code")
    return "".join(o.get("text", "") for o in first.get("outputs", []) if o.get("name") == "stdout")


def check(root: Path | None = None) -> list[str]:
    """Every reason the committed walkthroughs and baselines are not what `outputs` wrote."""
    root = root or repo_root()
    problems: list[str] = []
    manifest = load_manifest(root)
    full = {p.name: p for p in walkthroughs(root)}
    quick = {p.name: p for p in baselines(root)}
    for name in sorted(set(full) | set(quick) | set(manifest)):
        hint = f"run `{REPRODUCE_HINT.format(name=name)}`"
        if name not in full or name not in quick or name not in manifest:
            where = [
                w
                for w, d in (
                    ("notebooks/", full),
                    (str(BASELINE_DIR), quick),
                    ("the manifest", manifest),
                )
                if name not in d
            ]
            problems.append(f"{name}: missing from {', '.join(where)}; {hint}")
            continue
        nb_full, nb_quick = read(full[name]), read(quick[name])
        entry = manifest[name]
        if sources(nb_full) != sources(nb_quick):
            problems.append(
                f"{name}: the quick baseline's cells differ from the walkthrough's; {hint}"
            )
        if sources_digest(nb_full) != entry["sources"]:
            problems.append(
                f"{name}: outputs are stale, the cells changed after the last execution; {hint}"
            )
        for mode, path, expected in (
            ("full", full[name], FULL_BANNER),
            ("quick", quick[name], QUICK_BANNER),
        ):
            if file_digest(path) != entry[mode]:
                problems.append(
                    f"{name}: {path.relative_to(root)} is not what `{REGENERATE}` "
                    f"wrote (edited or autosaved since); {hint} or `git checkout` it"
                )
            nb = nb_full if mode == "full" else nb_quick
            if expected not in banner(nb):
                problems.append(
                    f"{name}: {path.relative_to(root)} was not executed in {mode} "
                    f"mode (banner: {banner(nb).strip()!r})"
                )
            errors = [
                o
                for c in nb.cells
                if c.cell_type == "code"
                for o in c.get("outputs", [])
                if o.get("output_type") == "error"
            ]
            unexecuted = [
                c for c in nb.cells if c.cell_type == "code" and c.execution_count is None
            ]
            if errors or unexecuted:
                problems.append(
                    f"{name}: {path.relative_to(root)} has {len(errors)} error "
                    f"output(s) and {len(unexecuted)} unexecuted cell(s)"
                )
    return problems


REPRODUCE_HINT = "python -m dlcourse outputs notebooks/{name}"


def run_one(path: Path, modes: list[str], root: Path | None = None, timeout: int = 1800) -> None:
    """Execute one walkthrough in the given modes and record it in the manifest."""
    root = root or repo_root()
    path = root / "notebooks" / path.name
    manifest = load_manifest(root)
    entry = dict(manifest.get(path.name, {}))
    nb_source = read(path)
    digest = sources_digest(nb_source)
    if entry.get("sources") != digest and set(modes) != set(MODES):
        raise SystemExit(
            f"{path.name}: its cells changed; re-execute both modes "
            f"(`{REPRODUCE_HINT.format(name=path.name)}`)"
        )
    baseline_dir(root).mkdir(parents=True, exist_ok=True)
    for mode in modes:
        target = path if mode == "full" else baseline_dir(root) / path.name
        if target != path:
            write(nb_source, target)  # same cells; outputs come from executing it below
        start = time.perf_counter()
        nb = execute(target, timeout=timeout, env=MODES[mode], cwd=path.parent)
        write(nb, target)
        entry[mode] = file_digest(target)
        print(
            f"{target.relative_to(root)}: {mode} mode, executed in "
            f"{time.perf_counter() - start:.0f} s",
            flush=True,
        )
    entry["sources"] = digest
    manifest = load_manifest(root)  # another run may have recorded other notebooks meanwhile
    manifest[path.name] = entry
    save_manifest(manifest, root)


def sync_markdown(path: Path, root: Path | None = None) -> None:
    """A prose-only edit: copy the walkthrough's Markdown cells into its baseline and record
    both, without executing. Refused unless every code cell is exactly as last executed."""
    root = root or repo_root()
    full_path, quick_path = root / "notebooks" / path.name, baseline_dir(root) / path.name
    full, quick = read(full_path), read(quick_path)
    code = [(c.cell_type, c.source) for c in full.cells if c.cell_type == "code"]
    executed = [(c.cell_type, c.source) for c in quick.cells if c.cell_type == "code"]
    shape = [c.cell_type for c in full.cells] == [c.cell_type for c in quick.cells]
    if code != executed or not shape:
        raise SystemExit(
            f"{path.name}: code cells changed too; re-execute "
            f"(`{REPRODUCE_HINT.format(name=path.name)}`)"
        )
    for mine, theirs in zip(quick.cells, full.cells, strict=True):
        if mine.cell_type == "markdown":
            mine.source = theirs.source
    write(full, full_path)
    write(quick, quick_path)
    manifest = load_manifest(root)
    manifest[path.name] = {
        "full": file_digest(full_path),
        "quick": file_digest(quick_path),
        "sources": sources_digest(full),
    }
    save_manifest(manifest, root)
    print(f"{path.name}: Markdown synced into the baseline, nothing executed")


def run(names: list[str] | None = None, modes: list[str] | None = None) -> int:
    paths = [Path(n) for n in names] if names else walkthroughs(repo_root())
    for path in paths:
        run_one(path, modes or list(MODES))
    problems = [p for p in check(repo_root()) if any(p.startswith(x.name) for x in paths)]
    for problem in problems:
        print("problem:", problem)
    return 1 if problems else 0


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("notebooks", nargs="*", help="default: every notebook in notebooks/")
    parser.add_argument(
        "--mode",
        choices=[*MODES, "both"],
        default="both",
        help="full: notebooks/ (class settings); quick: the CI baseline in "
        f"{BASELINE_DIR}/; both (default)",
    )
    parser.add_argument(
        "--markdown-only",
        action="store_true",
        help="after editing prose only: copy the Markdown into the baseline, execute nothing",
    )
