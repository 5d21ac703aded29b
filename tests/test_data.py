import gzip
import shutil
import subprocess
import sys
import warnings
from pathlib import Path

import numpy as np
import pytest

from dlcourse import data

SHARED = Path(__file__).resolve().parents[2] / "shared" / "data"
needs_shared = pytest.mark.skipif(not SHARED.is_dir(), reason="../shared/data not beside the repo")


def counts(y):
    return np.bincount(y.ravel(), minlength=10).tolist()


@needs_shared
def test_mnist_loads_with_keras_layout():
    (x_train, y_train), (x_test, y_test) = data.load_mnist()
    assert x_train.shape == (60000, 28, 28) and x_test.shape == (10000, 28, 28)
    assert y_train.shape == (60000,) and y_test.shape == (10000,)
    assert x_train.dtype == y_train.dtype == np.uint8
    assert counts(y_train) == [5923, 6742, 5958, 6131, 5842, 5421, 5918, 6265, 5851, 5949]
    assert counts(y_test) == [980, 1135, 1032, 1010, 982, 892, 958, 1028, 974, 1009]
    assert x_train.max() == 255 and x_train.min() == 0


@needs_shared
def test_fashion_mnist_loads():
    (x_train, y_train), (x_test, y_test) = data.load_fashion_mnist()
    assert x_train.shape == (60000, 28, 28) and y_test.shape == (10000,)
    assert counts(y_train) == [6000] * 10 and counts(y_test) == [1000] * 10


@needs_shared
def test_cifar10_full_is_lossy_and_says_so_once():
    data._warned_lossy.clear()
    with pytest.warns(data.LossyDataWarning, match="JPEG"):
        (x_train, y_train), (x_test, y_test) = data.load_cifar10()
    assert x_train.shape == (50000, 32, 32, 3) and x_test.shape == (10000, 32, 32, 3)
    assert y_train.shape == (50000, 1) and y_test.shape == (10000, 1)
    assert counts(y_train) == [5000] * 10 and counts(y_test) == [1000] * 10
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        data.load_cifar10()  # second load: no second warning


@needs_shared
def test_cifar10_exact_subset_matches_the_reconstruction_labels():
    (x_train, y_train), (x_test, y_test) = data.load_cifar10(subset="exact")
    assert x_train.shape == (4000, 32, 32, 3) and x_test.shape == (1000, 32, 32, 3)
    assert y_train.shape == (4000, 1)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", data.LossyDataWarning)
        (_, y_full), (_, y_full_test) = data.load_cifar10()
    np.testing.assert_array_equal(y_train, y_full[:4000])
    np.testing.assert_array_equal(y_test, y_full_test[:1000])


def test_unknown_subset_is_rejected():
    with pytest.raises(ValueError, match="exact"):
        data.load_cifar10(subset="tiny")


@needs_shared
def test_truncated_file_gives_clear_error(tmp_path):
    broken = tmp_path / "mnist.npz"
    broken.write_bytes((SHARED / "mnist.npz").read_bytes()[:100_000])
    with pytest.raises(data.DatasetError, match="corrupt") as err:
        data.load_mnist(tmp_path)
    assert str(broken) in str(err.value) and "Fix" in str(err.value)


def test_foreign_npz_is_rejected_by_checksum(tmp_path):
    np.savez(tmp_path / "mnist.npz", x_train=np.zeros((60000, 28, 28), np.uint8))
    with pytest.raises(data.DatasetError, match="SHA-256"):
        data.load_mnist(tmp_path / "mnist.npz")


def test_env_var_is_searched_before_shared(tmp_path, monkeypatch):
    (tmp_path / "mnist.npz").write_bytes(b"not a zip file")
    monkeypatch.setenv(data.DATA_ENV, str(tmp_path))
    assert data.search_dirs()[0] == tmp_path
    with pytest.raises(data.DatasetError, match=str(tmp_path)):
        data.load_mnist()


def test_array_validation_catches_wrong_counts():
    x = np.zeros((60000, 28, 28), np.uint8)
    y = np.zeros(60000, np.uint8)
    xt, yt = np.zeros((10000, 28, 28), np.uint8), np.zeros(10000, np.uint8)
    with pytest.raises(data.DatasetError, match="class counts"):
        data.validate("mnist", ((x, y), (xt, yt)))
    with pytest.raises(data.DatasetError, match="dtype"):
        data.validate("mnist", ((x.astype(np.float32), y), (xt, yt)))
    with pytest.raises(data.DatasetError, match="shape"):
        data.validate("mnist", ((x[:10], y), (xt, yt)))


@needs_shared
def test_keras_cache_layout_for_fashion_mnist(tmp_path, monkeypatch):
    """IDX .gz files in ~/.keras/datasets/fashion-mnist/ (Keras's own layout) are used."""
    (x_train, y_train), (x_test, y_test) = data.load_fashion_mnist()
    cache = tmp_path / ".keras" / "datasets" / "fashion-mnist"
    cache.mkdir(parents=True)
    for name, arr, header in [
        ("train-labels-idx1-ubyte.gz", y_train, 8),
        ("train-images-idx3-ubyte.gz", x_train, 16),
        ("t10k-labels-idx1-ubyte.gz", y_test, 8),
        ("t10k-images-idx3-ubyte.gz", x_test, 16),
    ]:
        with gzip.open(cache / name, "wb", compresslevel=1) as fh:  # the layout, not the size
            fh.write(b"\0" * header + arr.tobytes())
    monkeypatch.setattr(data, "search_dirs", lambda path=None: [tmp_path / ".keras" / "datasets"])
    (a, b), (c, d) = data.load_fashion_mnist()
    np.testing.assert_array_equal(a, x_train)
    np.testing.assert_array_equal(d, y_test)
    assert "Keras" in data.find("fashion_mnist").provenance


def _isolated_package(tmp_path: Path) -> Path:
    """A copy of the package with no data anywhere near it (a fresh clone without ../shared)."""
    pkg = tmp_path / "clone" / "dlcourse"
    shutil.copytree(Path(data.__file__).parent, pkg, ignore=shutil.ignore_patterns("__pycache__"))
    return pkg.parent


def _run_isolated(tmp_path: Path, code: list[str]) -> subprocess.CompletedProcess:
    clone = _isolated_package(tmp_path)
    env = {
        "PATH": "/usr/bin:/bin",
        "HOME": str(tmp_path / "home"),
        "PYTHONPATH": str(clone),
        "TF_CPP_MIN_LOG_LEVEL": "3",
    }
    return subprocess.run(
        [sys.executable, *code],
        cwd=clone,
        env=env,
        capture_output=True,
        check=False,
        text=True,
        timeout=300,
    )


def test_missing_data_gives_one_clear_error_not_a_download(tmp_path):
    result = _run_isolated(tmp_path, ["-c", "from dlcourse import data; data.load_mnist()"])
    assert result.returncode != 0
    assert (
        "DatasetError: Could not find the MNIST handwritten digits data set offline"
        in result.stderr
    )
    assert "DLCOURSE_DATA" in result.stderr and "../shared/data" in result.stderr
    assert str(tmp_path / "home" / ".keras" / "datasets") in result.stderr  # looked there too
    assert "site-packages/keras" not in result.stderr  # never reached Keras's downloader
    assert result.stderr.count("Traceback") == 1


def test_doctor_reports_missing_data_and_fails(tmp_path):
    result = _run_isolated(tmp_path, ["-m", "dlcourse", "doctor"])
    assert result.returncode == 1, result.stdout + result.stderr
    assert result.stdout.count("MISSING") == 4
    assert "4 problem(s) found." in result.stdout


@needs_shared
def test_doctor_shows_every_data_set(repo):
    result = subprocess.run(
        [sys.executable, "-m", "dlcourse", "doctor"],
        cwd=repo,
        check=False,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert result.returncode == 0, result.stdout + result.stderr
    out = result.stdout
    for title in ["MNIST handwritten digits", "Fashion-MNIST", "CIFAR-10 exact subset"]:
        assert f"OK {title}" in out
    assert "OK CIFAR-10  [LOSSY]" in out
    assert "Running on CPU" in out and "tensorflow-cpu" in out
