"""Every `DLCOURSE_*` environment variable the course reads, its default, and one parser.

- `DLCOURSE_QUICK`: `1` small, fast training settings (CI, grading), `0` full settings;
  unset: quick while nbgrader runs.
- `DLCOURSE_DATA`: a folder searched first for the data sets.
- `DLCOURSE_ALLOW_DOWNLOAD`: `1` lets Keras download a data set that is nowhere on disk.
- `DLCOURSE_SANDBOX`: `0` grades student code without the sandbox (refused unless the
  next one is set too).
- `DLCOURSE_ALLOW_UNSANDBOXED`: `1` is the instructor's explicit opt-out: grade even
  without filesystem isolation.
- `DLCOURSE_CGROUP`: a cgroup v2 folder delegated to the grader, under which each grading
  kernel gets a cgroup of its own (default: found; see `dlcourse/grader/cgroups.py`);
  `none` grades without a CPU and memory budget per kernel (and says so).
- `DLCOURSE_EXCHANGE`: the nbgrader exchange folder (default `<course>/work/exchange`).
- `DLCOURSE_DB_URL`: the gradebook as an SQLAlchemy URL (default
  `sqlite:///<course>/gradebook.db`; e.g. `postgresql://...`).
- `DLCOURSE_COURSE`: the course root (default: the nearest folder with `nbgrader_config.py`).
- `DLCOURSE_CLUSTER_CERTS`: the instructor's Dask client certificate folder (`ca.pem`,
  `cert.pem`, `key.pem`; `python -m dlcourse cluster certs DIR` writes `DIR/client`).
- `DLCOURSE_HUB_*`: the course on JupyterHub (deploy/jupyterhub), listed in `dlcourse/hub.py`.

TensorFlow's own logging is set once, here (`QUIET_TF`), for every process and kernel.
"""

from __future__ import annotations

import os
from pathlib import Path

QUICK = "DLCOURSE_QUICK"
DATA = "DLCOURSE_DATA"
ALLOW_DOWNLOAD = "DLCOURSE_ALLOW_DOWNLOAD"
SANDBOX = "DLCOURSE_SANDBOX"
ALLOW_UNSANDBOXED = "DLCOURSE_ALLOW_UNSANDBOXED"
EXCHANGE = "DLCOURSE_EXCHANGE"
CGROUP = "DLCOURSE_CGROUP"
DB_URL = "DLCOURSE_DB_URL"
COURSE = "DLCOURSE_COURSE"
CLUSTER_CERTS = "DLCOURSE_CLUSTER_CERTS"
# The one size limit for a submitted file, in nbgrader's kilobytes (of 1000 bytes): the
# student's `nbgrader submit`, the instructor's collect and grading all use it (both
# nbgrader_config.py files read it). A notebook with plots easily passes nbgrader's 5 MB
# default; 32 MB is room for any worksheet's outputs, and more is not homework.
MAX_FILE_KB = 32000
# nbgrader sets this while it autogrades or validates a notebook.
NBGRADER_EXECUTION = "NBGRADER_EXECUTION"

# Environment of every process that imports TensorFlow: no C++ INFO/WARNING lines on stderr.
QUIET_TF = {"TF_CPP_MIN_LOG_LEVEL": "2"}

_TRUE = {"1", "true", "yes", "on"}
_FALSE = {"0", "false", "no", "off"}


def flag(name: str, default: bool | None = None) -> bool | None:
    """A yes/no variable: `1/true/yes/on` or `0/false/no/off`; anything else is `default`."""
    value = os.environ.get(name, "").strip().lower()
    if value in _TRUE:
        return True
    if value in _FALSE:
        return False
    return default


def quick() -> bool:
    """Quick training settings: as `DLCOURSE_QUICK` says, else while nbgrader runs."""
    return bool(flag(QUICK, default=bool(os.environ.get(NBGRADER_EXECUTION))))


def sandbox_enabled() -> bool:
    return bool(flag(SANDBOX, default=True))


def unsandboxed_allowed() -> bool:
    return bool(flag(ALLOW_UNSANDBOXED, default=False))


def downloads_allowed() -> bool:
    return bool(flag(ALLOW_DOWNLOAD, default=False))


def data_dir() -> Path | None:
    value = os.environ.get(DATA)
    return Path(value).expanduser() if value else None


def cluster_certs() -> Path | None:
    value = os.environ.get(CLUSTER_CERTS)
    return Path(value).expanduser() if value else None


def course_root(start: Path | None = None) -> Path | None:
    """`DLCOURSE_COURSE`, else the nearest folder at or above `start` (default: the working
    directory) that holds an `nbgrader_config.py`."""
    if os.environ.get(COURSE):
        return Path(os.environ[COURSE]).expanduser().resolve()
    here = (start or Path.cwd()).resolve()
    for folder in (here, *here.parents):
        if (folder / "nbgrader_config.py").is_file():
            return folder
    return None
