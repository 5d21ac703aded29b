"""`python -m dlcourse doctor`: what is installed, which devices, where each data set is."""

from __future__ import annotations

import importlib.metadata as md
import os
import sys

from dlcourse import data
from dlcourse.grader import sandbox

PACKAGES = (
    "tensorflow-cpu",
    "tensorflow",
    "keras",
    "numpy",
    "matplotlib",
    "jupyterlab",
    "notebook",
    "nbgrader",
    "nbval",
    "pytest",
)
DATASETS = ("mnist", "fashion_mnist", "cifar10", "cifar10_exact")


def _version(name: str) -> str | None:
    try:
        return md.version(name)
    except md.PackageNotFoundError:
        return None


def run(out=sys.stdout) -> int:
    """Print the report; return the number of problems found."""
    problems = 0
    print(f"Python {sys.version.split()[0]} at {sys.executable}", file=out)
    for name in PACKAGES:
        version = _version(name)
        if version:
            print(f"  {name:<15} {version}", file=out)
    if not (_version("tensorflow-cpu") or _version("tensorflow")):
        print("  PROBLEM: TensorFlow is not installed (run `make setup`)", file=out)
        problems += 1
    else:
        from dlcourse.device import setup

        info = setup(verbose=False)
        print("\nDevices", file=out)
        print(f"  {info.banner}", file=out)
        visible = os.environ.get("CUDA_VISIBLE_DEVICES")
        if visible is not None:
            print(f"  CUDA_VISIBLE_DEVICES={visible!r}", file=out)
        for note in info.notes:
            print(f"  note: {note}", file=out)

    print("\nData sets (searched in this order):", file=out)
    for d in data.search_dirs():
        print(f"  - {d}", file=out)
    for name in DATASETS:
        title = data.manifest()[name]["title"]
        try:
            found = data.find(name)
        except data.DatasetError as err:
            problems += 1
            print(f"\n  MISSING {title}\n    " + str(err).replace("\n", "\n    "), file=out)
            continue
        flag = "  [LOSSY]" if found.lossy else ""
        print(f"\n  OK {title}{flag}\n    at {found.location}\n    {found.provenance}", file=out)
    print("\nAutograding sandbox (for instructors; students do not need it):", file=out)
    prot = sandbox.protections()
    print(f"  {prot.summary()}", file=out)
    if warning := prot.warning():
        print(f"  {warning}", file=out)
    print(file=out)
    if problems:
        print(f"{problems} problem(s) found.", file=out)
    else:
        print("Everything the course needs is here.", file=out)
    return problems
