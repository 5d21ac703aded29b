import subprocess
import sys


def test_python_code_is_ruff_clean(repo):
    result = subprocess.run(
        [
            sys.executable,
            "-m",
            "ruff",
            "check",
            "--no-cache",
            "dlcourse",
            "tests",
            "benchmarks",
            "nbgrader_config.py",
            "notebooks",
            "source",
        ],
        cwd=repo,
        capture_output=True,
        text=True,
        check=False,
    )
    assert result.returncode == 0, result.stdout + result.stderr


def test_committed_notebooks_are_canonical(repo):
    result = subprocess.run(
        [sys.executable, "-m", "dlcourse", "fmt", "--check"],
        cwd=repo,
        capture_output=True,
        text=True,
        check=False,
    )
    assert result.returncode == 0, result.stdout + result.stderr
