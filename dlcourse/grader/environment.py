"""What a grading environment is made of, as one fingerprint: everything that can change
whether a correct answer passes without changing the worksheet.

The reference run (`dlcourse.grader.reference`) is cached under this fingerprint, so the
canary runs again whenever any of it changes: the Python interpreter and every installed
distribution's version, the course package's code, the kernel spec, the data sets a kernel
would be pointed at (names, sizes, modification times: hidden, moved or replaced files
count), the sandbox's protections, and the kernel's environment (the allow-listed variables
as the kernel gets them, less PATH and TERM). A part that cannot be read (a package
made unreadable, a kernel spec gone) goes into the fingerprint as its error, so a broken
environment never matches a good one.
"""

from __future__ import annotations

import hashlib
import importlib.metadata
import json
import os
import sys
from pathlib import Path

from dlcourse import data, settings
from dlcourse.grader import sandbox
from dlcourse.notebooks import KERNELSPEC

PACKAGE = Path(__file__).resolve().parent.parent
KERNEL_NAME = KERNELSPEC["name"]


def _distributions() -> list[str]:
    found = {f"{d.metadata['Name']}=={d.version}" for d in importlib.metadata.distributions()}
    return sorted(found)


def _package_code() -> str:
    digest = hashlib.sha256()
    for path in sorted(PACKAGE.rglob("*")):
        if path.suffix in {".py", ".json"} and "__pycache__" not in path.parts:
            digest.update(str(path.relative_to(PACKAGE)).encode() + path.read_bytes())
    return digest.hexdigest()


def _kernel_spec() -> dict:
    """The kernel spec a worksheet's kernel is started from, as jupyter_client resolves it
    (JUPYTER_PATH, the data dirs, this prefix)."""
    from jupyter_client.kernelspec import KernelSpecManager

    spec = KernelSpecManager().get_kernel_spec(KERNEL_NAME)
    return spec.to_dict() | {"resource_dir": spec.resource_dir}


def _data_sets() -> dict:
    """The folder a grading kernel is pointed at (`sandbox.kernel_environment`) and its files."""
    folder = settings.data_dir() or data.course_data_dir()
    if folder is None:
        return {"folder": None}
    files = {}
    for path in sorted(folder.resolve().rglob("*")):
        if path.is_file():
            stat = path.stat()
            files[str(path.relative_to(folder.resolve()))] = [stat.st_size, stat.st_mtime_ns]
    return {"folder": str(folder.resolve()), "files": files}


# Allow-listed variables that cannot change a result, or differ between the driver, its
# children and a Dask worker: each lays out PATH its own way, TERM depends on the terminal,
# and the data folder is the "data" part, as resolved.
_UNFINGERPRINTED = {"PATH", "TERM", settings.DATA}


def _kernel_variables() -> dict[str, str]:
    """The variables a grading kernel gets from this process (`sandbox.kernel_environment`)."""
    inherited = sandbox.inherited_environment(os.environ)
    return {k: v for k, v in inherited.items() if k not in _UNFINGERPRINTED}


def _protections() -> str:
    return repr(sandbox.protections())


PARTS = {
    "python": lambda: [sys.version, sys.executable, sys.prefix],
    "distributions": _distributions,
    "package": _package_code,
    "kernel_spec": _kernel_spec,
    "data": _data_sets,
    "kernel_environment": _kernel_variables,
    "sandbox": _protections,
    "user": lambda: [os.geteuid(), os.getegid()],
}


def describe() -> dict:
    """Each part's value, or the error that reading it raised."""
    parts = {}
    for name, read in PARTS.items():
        try:
            parts[name] = read()
        except Exception as err:  # noqa: BLE001 - an unreadable part is part of the fingerprint
            parts[name] = f"unreadable: {type(err).__name__}: {err}"
    return parts


def fingerprint() -> str:
    text = json.dumps(describe(), sort_keys=True, default=str)
    return hashlib.sha256(text.encode()).hexdigest()
