"""TensorFlow's import-time log lines, with real TensorFlow in real kernels.

TensorFlow 2.21 logs from C++ to file descriptor 2 while it is imported (absl's
"before absl::InitializeLog()" warning, the oneDNN line, the CPU-features lines), whatever
TF_CPP_MIN_LOG_LEVEL says. Students must not see that in the first cell, and the grader must
drop it (IgnorePattern) where a kernel was started without the course's environment.
"""

from __future__ import annotations

import json
import os
import re
import sys
from pathlib import Path

import nbformat
import pytest
from jupyter_client.kernelspec import KernelSpecManager
from nbclient import NotebookClient
from traitlets.config.loader import PyFileConfigLoader

from dlcourse import kernel_env

REPO = Path(__file__).resolve().parent.parent
pytestmark = pytest.mark.slow


def first_code_cell(path: Path) -> str:
    nb = nbformat.read(path, as_version=4)
    return next(c.source for c in nb.cells if c.cell_type == "code")


def run_cells(sources: list[str], kernel_name: str, cwd: Path) -> list[list[dict]]:
    # ipykernel does not capture file descriptor 2 when it sees PYTEST_CURRENT_TEST; a
    # student's kernel does, and that is what is tested here.
    os.environ.pop("PYTEST_CURRENT_TEST", None)
    nb = nbformat.v4.new_notebook(cells=[nbformat.v4.new_code_cell(s) for s in sources])
    NotebookClient(
        nb, kernel_name=kernel_name, timeout=180, resources={"metadata": {"path": str(cwd)}}
    ).execute()
    return [cell.outputs for cell in nb.cells]


def stderr_of(outputs: list[dict]) -> list[str]:
    return [
        o["text"] for o in outputs if o.get("output_type") == "stream" and o["name"] == "stderr"
    ]


@pytest.fixture
def bare_env(monkeypatch, tmp_path):
    """No TF_*/ABSL/GRPC settings from the caller: what a fresh shell gives a kernel."""
    for key in list(os.environ):
        if key.startswith(("TF_", "ABSL", "GRPC", "GLOG")):
            monkeypatch.delenv(key)
    monkeypatch.setenv("JUPYTER_PATH", str(tmp_path / "jupyter"))
    monkeypatch.setenv("IPYTHONDIR", str(tmp_path / "ipython"))
    return tmp_path


def plain_kernel(root: Path) -> str:
    """A kernel spec as ipykernel writes it: no course environment, no extension."""
    folder = root / "jupyter" / "kernels" / "tfplain"
    folder.mkdir(parents=True)
    (folder / "kernel.json").write_text(
        json.dumps(
            {
                "argv": [sys.executable, "-m", "ipykernel_launcher", "-f", "{connection_file}"],
                "display_name": "plain",
                "language": "python",
            }
        )
    )
    return "tfplain"


def test_without_the_course_environment_tf_logs_and_ignore_pattern_drops_exactly_that(bare_env):
    # Careless set-up first: a plain kernel, TF_CPP_MIN_LOG_LEVEL=3, TensorFlow imported
    # directly. The noise is real (else this test proves nothing)...
    os.environ["TF_CPP_MIN_LOG_LEVEL"] = "3"
    outputs = run_cells(
        [
            "import tensorflow as tf\ntf.transpose(tf.constant([[1, 2], [3, 4]]))",
            "import os\nos.write(2, b'student debug line\\n')",
        ],
        plain_kernel(bare_env),
        bare_env,
    )
    noise = stderr_of(outputs[0])
    text = "".join(noise)
    assert "before absl::InitializeLog() is called" in text, outputs[0]
    assert re.search(r"^I0000 00:00:\d+\.\d+ +\d+ port\.cc:\d+\] oneDNN", text, re.M), text
    # ...and the grader's IgnorePattern, as nbgrader_config.py configures it, drops it.
    config = PyFileConfigLoader("nbgrader_config.py", path=str(REPO)).load_config()
    pattern = config.IgnorePattern.pattern
    assert config.IgnorePattern.enabled and pattern == kernel_env.TF_LOG_ONLY
    for chunk in noise:
        assert re.search(pattern, chunk), f"IgnorePattern misses TensorFlow's line(s):\n{chunk}"
    # Anything else on stderr still counts: a student's own line, alone or mixed with TF's.
    own = "".join(stderr_of(outputs[1]))
    assert own == "student debug line\n"
    assert not re.search(pattern, own)
    assert not re.search(pattern, text + own)
    assert not re.search(pattern, "Traceback (most recent call last):\n" + text)
    # Both TF log formats, the dated one of older releases too.
    dated = "2026-11-25 23:00:01.123456: I tensorflow/core/util/port.cc:113] oneDNN on.\n"
    assert re.search(pattern, dated + text)


def test_first_cell_has_no_stderr_in_the_course_kernel(bare_env):
    spec = KernelSpecManager().get_kernel_spec("python3")
    assert kernel_env.EXTENSION_ARG in spec.argv, f"{spec.resource_dir}: run `make setup`"
    assert spec.env.get("TF_CPP_MIN_LOG_LEVEL") == "2"
    worksheet = sorted((REPO / "source").glob("*/*.ipynb"))[0]
    outputs = run_cells(
        [
            first_code_cell(worksheet),
            # TF 2.21 logs "E0000 ... oneDNN supports DT_INT32 only on platforms with AVX-512"
            # here (walkthrough 01, cell 24) on CPUs without AVX-512.
            "import tensorflow as tf\nprint(tf.transpose(tf.constant([[1, 2], [3, 4]])).shape)",
            "import os, time\nos.write(2, b'still visible\\n')\nos.write(2, b'no newline')\n"
            "time.sleep(1)",
            # careless/hostile: one endless line on fd 2 is passed on, not held back
            "import os, time\nfor _ in range(50):\n    os.write(2, b'x' * 4000)\ntime.sleep(1)",
        ],
        "python3",
        REPO,
    )
    assert stderr_of(outputs[0]) == [], outputs[0]
    assert "Running on CPU (" in "".join(o.get("text", "") for o in outputs[0])
    assert stderr_of(outputs[1]) == [], outputs[1]
    # Silencing is not blindness: other stderr still reaches the student, a partial line too.
    assert "".join(stderr_of(outputs[2])) == "still visible\nno newline"
    assert "".join(stderr_of(outputs[3])) == "x" * 200_000


def test_tensorflow_imported_before_dlcourse_is_quiet_too(bare_env):
    outputs = run_cells(["import tensorflow as tf\ntf.constant(1)"], "python3", bare_env)
    assert stderr_of(outputs[0]) == [], outputs[0]


def test_kernel_spec_install_is_idempotent_and_survives_a_reinstall(tmp_path):
    # A reinstalled ipykernel writes its own kernel.json back: install() restores ours.
    path = kernel_env.kernel_spec_path(tmp_path)
    path.parent.mkdir(parents=True)
    original = {
        "argv": ["python", "-m", "ipykernel_launcher", "-f", "{connection_file}"],
        "display_name": "Python 3 (ipykernel)",
        "language": "python",
        "env": {"OTHER": "kept"},
    }
    path.write_text(json.dumps(original))
    kernel_env.install(tmp_path)
    kernel_env.install(tmp_path)
    spec = json.loads(path.read_text())
    assert spec["argv"].count(kernel_env.EXTENSION_ARG) == 1
    assert spec["env"] == {"OTHER": "kept", "TF_CPP_MIN_LOG_LEVEL": "2"}
