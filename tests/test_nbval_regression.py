"""nbval really catches a regression in a committed output, and says what changed.

A copy of the smallest quick-mode walkthrough baseline (tests/walkthroughs_quick/, what CI
compares against; while there is none, a tiny executed stand-in) is run through nbval twice in
one pytest subprocess: unaltered, and with one printed digit changed in a committed output. The
unaltered copy must pass; the altered one must fail with a readable diff that shows both the
committed (old) and the recomputed (new) value.
"""

from __future__ import annotations

import configparser
import os
import re
import subprocess
import sys
import xml.etree.ElementTree as ET
from pathlib import Path

import nbformat
import pytest

from dlcourse import notebooks, outputs

REPO = Path(__file__).resolve().parent.parent
SANITIZE_CFG = REPO / "tests" / "nbval_sanitize.cfg"
SKIP_MARKERS = ("NBVAL_IGNORE_OUTPUT", "NBVAL_SKIP", "NBVAL_RAISES_EXCEPTION")

STANDIN_CELLS = [
    "from dlcourse import seed_everything, setup",
    "print(round(2 / 3, 4))",
    'print("three cells, one printed value")',
]


def sanitizers() -> list[tuple[re.Pattern, str]]:
    """The (regex, replacement) pairs nbval applies, read from tests/nbval_sanitize.cfg."""
    cfg = configparser.ConfigParser()
    cfg.read(SANITIZE_CFG)
    return [(re.compile(cfg[s]["regex"]), cfg[s]["replace"]) for s in cfg.sections()]


def sanitize(text: str) -> str:
    for regex, replace in sanitizers():
        text = regex.sub(replace, text)
    return text


def checked_cell(cell) -> bool:
    """nbval compares this cell's outputs (no skip / ignore-output marker or tag)."""
    tags = cell.metadata.get("tags", [])
    return (
        cell.cell_type == "code"
        and not any(m in cell.source for m in SKIP_MARKERS)
        and not any(t.startswith(("nbval-skip", "nbval-ignore-output", "raises")) for t in tags)
    )


def alter_one_digit(nb) -> tuple[str, str]:
    """Change one digit in a stdout line nbval compares; return (old line, new line)."""
    for cell in nb.cells:
        if not checked_cell(cell):
            continue
        for output in cell.get("outputs", []):
            if output.get("output_type") != "stream" or output.get("name") != "stdout":
                continue
            lines = output["text"].splitlines(keepends=True)
            for i, line in enumerate(lines):
                for m in re.finditer(r"\d", line):
                    digit = str((int(m.group()) + 1) % 10)
                    new = line[: m.start()] + digit + line[m.end() :]
                    if sanitize(new) != sanitize(line):  # the sanitizers must not hide it
                        lines[i] = new
                        output["text"] = "".join(lines)
                        return line.strip(), new.strip()
    raise LookupError("no compared stdout output with a digit")


def tiny_notebook(folder: Path) -> Path:
    """A 3-cell notebook, executed in quick mode so it carries real committed outputs."""
    nb = nbformat.v4.new_notebook(cells=[nbformat.v4.new_code_cell(s) for s in STANDIN_CELLS])
    path = folder / "tiny.ipynb"
    notebooks.write(nb, path)
    notebooks.write(notebooks.execute(path, timeout=120), path)
    return path


def walkthrough_with_digits() -> Path | None:
    """The smallest quick-mode baseline that has a compared stdout digit to alter."""
    for path in sorted(outputs.baselines(REPO), key=lambda p: p.stat().st_size):
        try:
            alter_one_digit(nbformat.read(path, as_version=4))
        except LookupError:
            continue
        return path
    return None


@pytest.mark.slow
def test_nbval_fails_on_an_altered_output_with_a_readable_diff(tmp_path):
    good_dir, bad_dir, work = tmp_path / "unaltered", tmp_path / "altered", tmp_path / "work"
    for d in (good_dir, bad_dir, work):
        d.mkdir()
    source = walkthrough_with_digits() or tiny_notebook(work)

    nb = nbformat.read(source, as_version=4)
    nbformat.write(nb, good_dir / source.name)
    old, new = alter_one_digit(nb)
    nbformat.write(nb, bad_dir / source.name)

    junit = tmp_path / "junit.xml"
    cmd = [
        sys.executable,
        "-m",
        "pytest",
        "-c",
        "/dev/null",  # the repo's addopts and testpaths must not apply
        "--rootdir",
        str(tmp_path),
        "-p",
        "no:cacheprovider",
        "-vv",  # full diffs, however long the output
        "--nbval",
        "--nbval-current-env",
        "--nbval-sanitize-with",
        str(SANITIZE_CFG),
        f"--junitxml={junit}",
        str(good_dir / source.name),
        str(bad_dir / source.name),
    ]
    # The copies live outside the course, so they are told where it is (and so its data);
    # and the outer run's PYTEST_ADDOPTS (a --basetemp, say) are not this run's.
    env = {**os.environ, "DLCOURSE_COURSE": str(REPO)}
    env.pop("PYTEST_ADDOPTS", None)
    result = subprocess.run(
        cmd, cwd=tmp_path, env=env, capture_output=True, text=True, timeout=600, check=False
    )
    out = re.sub(r"\x1b\[[0-9;]*m", "", result.stdout + result.stderr)  # nbval colours
    where = f"(notebook {source.name}, changed {old!r} -> {new!r})\n{out[-6000:]}"

    assert result.returncode == 1, f"nbval should fail (tests failed, exit 1) {where}"
    failed: dict[str, list[bool]] = {"unaltered": [], "altered": []}
    for case in ET.parse(junit).getroot().iter("testcase"):
        folder = case.get("classname", "").split(".", 1)[0]
        failed[folder].append(case.find("failure") is not None or case.find("error") is not None)
    assert failed["unaltered"] and not any(failed["unaltered"]), f"unaltered copy failed {where}"
    assert sum(failed["altered"]) == 1, f"exactly one altered cell should fail {where}"

    # A readable diff: nbval names the cell and the mismatch, then pytest's diff shows the
    # recomputed value ("-") against the committed, altered one ("+").
    assert "Cell outputs differ" in out and "mismatch 'stdout'" in out, where
    assert re.search(rf"^\s*- {re.escape(old)}$", out, re.M), f"recomputed value missing {where}"
    assert re.search(rf"^\s*\+ {re.escape(new)}$", out, re.M), f"committed value missing {where}"
