"""The course's kernel environment: TensorFlow's start-up log kept out of students' cells.

TensorFlow 2.21 writes, from C++ and straight to file descriptor 2, while it is imported::

    WARNING: All log messages before absl::InitializeLog() is called are written to STDERR
    I0000 00:00:1795647716.346534    6045 port.cc:153] oneDNN custom operations are on. ...
    I0000 00:00:1795647716.401920    6045 cpu_feature_guard.cc:227] This TensorFlow binary ...
    To enable the following instructions: AVX2 AVX512F FMA, in other operations, rebuild ...

These are absl messages logged before absl is initialised, so `TF_CPP_MIN_LOG_LEVEL` (any
value) does not stop them; only `TF_ENABLE_ONEDNN_OPTS=0` removes the oneDNN line, by turning
oneDNN off. Instead, `quiet_tensorflow_import()` catches file descriptor 2 while TensorFlow is
imported and writes back every line that is *not* one of these log lines: oneDNN stays on and
a real error still shows.

Where it is installed, so that every kernel gets it:

- the venv's `python3` kernel spec loads this module as an IPython extension, which also
  filters TensorFlow's log lines out of everything the kernel writes to fd 2 later
  (`--ext=dlcourse.kernel_env`) and sets `TF_CPP_MIN_LOG_LEVEL`; `make setup` rewrites the
  spec every time (`dlcourse.kernel_env.main(["install"])`), so a reinstalled ipykernel cannot
  drop it: `make lab`, `make student-lab`, nbval, nbgrader and a JupyterHub using the venv;
- `import dlcourse` installs it too (every notebook's first cell imports dlcourse before
  TensorFlow), which covers kernels started from any other kernel spec and the grading
  sandbox (which passes the kernel only TF_/DLCOURSE_/... variables, but keeps its argv).

`TF_LOG_LINE` is also what `nbgrader_config.py`'s `IgnorePattern` drops from graded stderr.
"""

from __future__ import annotations

import importlib.abc
import json
import os
import re
import select
import sys
import tempfile
import threading
from pathlib import Path

from dlcourse import settings

# One TensorFlow/absl log line (without its newline). Formats seen from TensorFlow 2.21:
TF_LOG_LINE = (
    r"(?:"
    # TF C++ logging (older releases): 2026-01-02 03:04:05.678901: I tensorflow/...] text
    r"\d{4}-\d\d-\d\d \d\d:\d\d:\d\d\.\d+: [IWEF] \S+\] .*"
    # absl: I0102 03:04:05.678901  1234 file.cc:12] text; before absl::InitializeLog() the
    # date and time are zero and the seconds are the Unix time: I0000 00:00:1795647716.346534
    r"|[IWEF]\d{4} \d\d:\d\d:\d+\.\d+ +\d+ \S+:\d+\] .*"
    r"|WARNING: All log messages before absl::InitializeLog\(\) is called are written to STDERR"
    # the second line of cpu_feature_guard.cc's message
    r"|To enable the following instructions: .*, in other operations, rebuild TensorFlow "
    r"with the appropriate compiler flags\."
    r")"
)
# A stderr output made only of such lines (and blank lines).
TF_LOG_ONLY = rf"\A(?:(?:{TF_LOG_LINE}|[ \t]*)(?:\n|\Z))+\Z"

# Set for every kernel of the course (kernel spec "env", nbgrader_config.py): TensorFlow's own
# Python and C++ logging at ERROR and above.
KERNEL_ENV = dict(settings.QUIET_TF)
EXTENSION_ARG = "--ext=dlcourse.kernel_env"
_LINE = re.compile(TF_LOG_LINE)
_lock = threading.Lock()


def not_tf_log(text: str) -> str:
    """`text` without TensorFlow's log lines."""
    kept = [line for line in text.splitlines(keepends=True) if not _LINE.fullmatch(line.rstrip())]
    return "".join(kept)


class _QuietLoader(importlib.abc.Loader):
    def __init__(self, loader):
        self._loader = loader

    def create_module(self, spec):
        return self._loader.create_module(spec)

    def exec_module(self, module):
        with _lock:
            sys.stderr.flush()
            saved = os.dup(2)
            with tempfile.TemporaryFile() as caught:
                os.dup2(caught.fileno(), 2)
                try:
                    self._loader.exec_module(module)
                finally:
                    os.dup2(saved, 2)
                    os.close(saved)
                    caught.seek(0)
                    rest = not_tf_log(caught.read().decode(errors="replace"))
                    if rest:
                        sys.stderr.write(rest)
                        sys.stderr.flush()

    def __getattr__(self, name):  # get_resource_reader, is_package, ...
        return getattr(self._loader, name)


class _QuietFinder(importlib.abc.MetaPathFinder):
    def find_spec(self, fullname, path=None, target=None):
        if fullname != "tensorflow":
            return None
        for finder in sys.meta_path:
            if finder is self or not hasattr(finder, "find_spec"):
                continue
            spec = finder.find_spec(fullname, path, target)
            if spec is not None:
                if spec.loader is not None:
                    spec.loader = _QuietLoader(spec.loader)
                return spec
        return None


def quiet_tensorflow_import() -> None:
    """Keep TensorFlow's import-time log lines off stderr (idempotent; no-op once imported)."""
    for key, value in KERNEL_ENV.items():
        os.environ.setdefault(key, value)
    if "tensorflow" in sys.modules or any(isinstance(f, _QuietFinder) for f in sys.meta_path):
        return
    sys.meta_path.insert(0, _QuietFinder())


class _StderrLineFilter:
    """File descriptor 2 through a pipe; a thread forwards every line but TensorFlow's log
    lines to where fd 2 pointed before (ipykernel's capture, or the terminal). TensorFlow also
    logs while it runs, e.g. `E0000 00:00:... util.cc:131] oneDNN supports DT_INT32 only on
    platforms with AVX-512` on tf.transpose of an int32 tensor. A line without its newline is
    forwarded after 0.2 s, so prompts and partial output still show."""

    PARTIAL_LINE_WAIT = 0.2
    MAX_PARTIAL_LINE = 64 * 1024

    def __init__(self) -> None:
        sys.stderr.flush()
        self._out = os.dup(2)
        read, write = os.pipe()
        os.dup2(write, 2)
        os.close(write)
        self._in = read
        threading.Thread(target=self._pump, name="dlcourse-stderr-filter", daemon=True).start()

    def _write(self, data: bytes) -> None:
        while data:
            data = data[os.write(self._out, data) :]

    def _pump(self) -> None:
        pending = b""
        try:
            while True:
                wait = self.PARTIAL_LINE_WAIT if pending else None
                if not select.select([self._in], [], [], wait)[0]:
                    self._write(pending)
                    pending = b""
                    continue
                chunk = os.read(self._in, 65536)
                if not chunk:
                    break
                *lines, pending = (pending + chunk).split(b"\n")
                kept = [
                    line + b"\n"
                    for line in lines
                    if not _LINE.fullmatch(line.decode(errors="replace").rstrip())
                ]
                if kept:
                    self._write(b"".join(kept))
                if len(pending) > self.MAX_PARTIAL_LINE:  # an endless line: pass it on as is
                    self._write(pending)
                    pending = b""
        except OSError:
            pass
        if pending:
            self._write(pending)


_filter: _StderrLineFilter | None = None


def load_ipython_extension(ipython) -> None:  # noqa: ARG001 - IPython's extension hook
    """In a kernel: TensorFlow's log lines are kept off stderr for the kernel's whole life."""
    global _filter
    quiet_tensorflow_import()
    if _filter is None:
        _filter = _StderrLineFilter()


def kernel_spec_path(prefix: str | Path = sys.prefix) -> Path:
    return Path(prefix) / "share" / "jupyter" / "kernels" / "python3" / "kernel.json"


def install(prefix: str | Path = sys.prefix) -> Path:
    """Write the course's environment into the prefix's python3 kernel spec (idempotent)."""
    path = kernel_spec_path(prefix)
    if path.exists():
        spec = json.loads(path.read_text())
    else:
        spec = {
            "argv": ["python", "-m", "ipykernel_launcher", "-f", "{connection_file}"],
            "display_name": "Python 3 (ipykernel)",
            "language": "python",
            "metadata": {"debugger": True},
        }
    if EXTENSION_ARG not in spec["argv"]:
        spec["argv"].append(EXTENSION_ARG)
    spec["env"] = spec.get("env", {}) | KERNEL_ENV
    path.parent.mkdir(parents=True, exist_ok=True)
    text = json.dumps(spec, indent=1) + "\n"
    if not path.exists() or path.read_text() != text:
        path.write_text(text)
    return path


def main(argv: list[str] | None = None) -> int:
    args = sys.argv[1:] if argv is None else argv
    if args != ["install"]:
        print("usage: main(['install'])", file=sys.stderr)
        return 2
    print(f"kernel spec with the course's environment: {install()}")
    return 0
