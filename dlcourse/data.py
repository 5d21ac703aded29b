"""Offline-first data sets with the same arrays and layout as `keras.datasets.*.load_data()`.

Where we look, in order (the first place that has the data set wins):

1. the `path` argument (a file or a directory);
2. `$DLCOURSE_DATA`;
3. `./data` and `../shared/data` relative to the working directory, then relative to the
   course repository (so notebooks in sub-folders find the same data);
4. Keras's cache `~/.keras/datasets` (genuine files downloaded by Keras earlier);
5. a Keras download, only when allowed (`allow_download=True` or `DLCOURSE_ALLOW_DOWNLOAD=1`).

Every file is checked against `manifest.json` (SHA-256 where the file is known) and every
array is validated (shape, dtype, label range, class counts), so a truncated or foreign file
gives one clear `DatasetError` instead of a stack trace deep inside NumPy or Keras.
"""

from __future__ import annotations

import gzip
import hashlib
import json
import os
import pickle
import sys
import warnings
import zipfile
from collections.abc import Callable
from dataclasses import dataclass
from functools import cache
from pathlib import Path

import numpy as np

from dlcourse import settings

Arrays = tuple[tuple[np.ndarray, np.ndarray], tuple[np.ndarray, np.ndarray]]

DATA_ENV = settings.DATA
DOWNLOAD_ENV = settings.ALLOW_DOWNLOAD

MNIST_CLASSES = tuple(str(d) for d in range(10))
FASHION_MNIST_CLASSES = (
    "T-shirt/top",
    "Trouser",
    "Pullover",
    "Dress",
    "Coat",
    "Sandal",
    "Shirt",
    "Sneaker",
    "Bag",
    "Ankle boot",
)
CIFAR10_CLASSES = (
    "airplane",
    "automobile",
    "bird",
    "cat",
    "deer",
    "dog",
    "frog",
    "horse",
    "ship",
    "truck",
)

CIFAR_BATCHES = tuple(f"data_batch_{i}" for i in range(1, 6))


class DatasetError(RuntimeError):
    """A data set is missing, corrupt, or not what the course expects."""


class LossyDataWarning(UserWarning):
    """The data set in use is an approximation of the original."""


@dataclass(frozen=True)
class Found:
    name: str
    location: Path
    provenance: str
    lossy: bool = False


@cache
def manifest() -> dict:
    return json.loads((Path(__file__).parent / "manifest.json").read_text())


def candidate_dirs(path: str | os.PathLike | None = None) -> list[Path]:
    """Every directory searched, in order, as named (duplicates and symlinks kept)."""
    candidates: list[Path] = []
    if path is not None:
        given = Path(path).expanduser()
        candidates.append(given.parent if given.is_file() else given)
    if settings.data_dir():
        candidates.append(settings.data_dir())
    bases = [Path.cwd()]
    course = settings.course_root()
    if course is not None and course != Path.cwd():
        bases.append(course)
    for base in bases:
        candidates += [base / "data", base.parent / "shared" / "data"]
    candidates.append(Path.home() / ".keras" / "datasets")
    return candidates


def search_dirs(path: str | os.PathLike | None = None) -> list[Path]:
    """The directories searched, in order, without duplicates."""
    seen: set[Path] = set()
    unique = []
    for c in candidate_dirs(path):
        key = c.resolve() if c.exists() else c.absolute()
        if key not in seen:
            seen.add(key)
            unique.append(c)
    return unique


def course_data_dir() -> Path | None:
    """The first searched folder that holds any of the course's data files (as named, not
    resolved): what a grading kernel is pointed at with DLCOURSE_DATA."""
    names = [name for spec in manifest().values() for name in spec["files"]]
    for folder in search_dirs():
        if any((folder / name).exists() for name in names):
            return folder
    return None


def _sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as fh:
        for block in iter(lambda: fh.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


@cache
def _sha256_cached(path: Path, size: int, mtime: float) -> str:
    return _sha256(path)


def file_sha256(path: Path) -> str:
    st = path.stat()
    return _sha256_cached(path.resolve(), st.st_size, st.st_mtime)


def _corrupt(path: Path, why: str) -> DatasetError:
    return DatasetError(
        f"{path} is corrupt or not the expected file ({why}).\n"
        f"Fix: replace it with a fresh copy (see `python -m dlcourse doctor`), or delete it "
        f"so another location is used."
    )


def _check_known_sha(path: Path, known: dict[str, str]) -> str:
    digest = file_sha256(path)
    if digest not in known:
        raise _corrupt(path, f"SHA-256 {digest[:12]}… matches no known copy")
    return known[digest]


def validate(name: str, arrays: Arrays, source: Path | str = "<arrays>") -> Arrays:
    """Check shapes, dtype, label range and class counts against the manifest."""
    spec = manifest()[name]
    (x_train, y_train), (x_test, y_test) = arrays
    parts = {"x_train": x_train, "y_train": y_train, "x_test": x_test, "y_test": y_test}
    for key, arr in parts.items():
        if tuple(arr.shape) != tuple(spec[key]):
            raise DatasetError(
                f"{source}: {key} has shape {arr.shape}, expected {tuple(spec[key])}"
            )
        if arr.dtype != np.uint8:
            raise DatasetError(f"{source}: {key} has dtype {arr.dtype}, expected uint8")
    for split, labels in (("train", y_train), ("test", y_test)):
        if labels.size and (labels.min() < 0 or labels.max() > 9):
            raise DatasetError(f"{source}: y_{split} has labels outside 0..9")
        counts = np.bincount(labels.ravel(), minlength=10).tolist()
        if counts != spec["class_counts"][split]:
            raise DatasetError(
                f"{source}: y_{split} class counts {counts} differ from the expected "
                f"{spec['class_counts'][split]}"
            )
    return arrays


# --- readers: each returns (arrays, provenance, lossy) or None when the layout is absent ---

Reader = Callable[[Path], "tuple[Arrays, str, bool] | None"]


def _read_npz(path: Path, keys: tuple[str, ...]) -> Arrays:
    try:
        with np.load(path, allow_pickle=False) as npz:
            missing = [k for k in keys if k not in npz.files]
            if missing:
                raise _corrupt(path, f"missing arrays {missing}")
            x_train, y_train, x_test, y_test = (npz[k] for k in keys)
    except DatasetError:
        raise
    except (OSError, ValueError, EOFError, zipfile.BadZipFile, KeyError) as err:
        raise _corrupt(path, f"{type(err).__name__}: {err}") from None
    return (x_train, y_train), (x_test, y_test)


def _npz_reader(filename: str, spec_name: str) -> Reader:
    keys = ("x_train", "y_train", "x_test", "y_test")

    def read(directory: Path):
        path = directory / filename
        if not path.is_file():
            return None
        known = manifest()[spec_name]["files"][filename]["sha256"]
        provenance = _check_known_sha(path, known)
        return _read_npz(path, keys), provenance, False

    return read


def _read_idx_gz(path: Path, offset: int) -> np.ndarray:
    try:
        with gzip.open(path, "rb") as fh:
            return np.frombuffer(fh.read(), np.uint8, offset=offset)
    except (OSError, EOFError, ValueError) as err:
        raise _corrupt(path, f"{type(err).__name__}: {err}") from None


def _read_keras_fashion(directory: Path):
    folder = directory / "fashion-mnist"
    names = [
        "train-labels-idx1-ubyte.gz",
        "train-images-idx3-ubyte.gz",
        "t10k-labels-idx1-ubyte.gz",
        "t10k-images-idx3-ubyte.gz",
    ]
    if not all((folder / n).is_file() for n in names):
        return None
    y_train = _read_idx_gz(folder / names[0], 8)
    x_train = _read_idx_gz(folder / names[1], 16)
    y_test = _read_idx_gz(folder / names[2], 8)
    x_test = _read_idx_gz(folder / names[3], 16)
    try:
        x_train = x_train.reshape(len(y_train), 28, 28)
        x_test = x_test.reshape(len(y_test), 28, 28)
    except ValueError as err:
        raise _corrupt(folder, str(err)) from None
    arrays = (x_train, y_train), (x_test, y_test)
    return arrays, "Fashion-MNIST IDX files in Keras's cache (no checksum in Keras)", False


def _load_cifar_batch(path: Path) -> tuple[np.ndarray, np.ndarray]:
    try:
        with path.open("rb") as fh:
            batch = pickle.load(fh, encoding="bytes")
        data = np.asarray(batch[b"data"], dtype=np.uint8)
        labels = np.asarray(batch[b"labels"], dtype=np.uint8)
        images = data.reshape(-1, 3, 32, 32).transpose(0, 2, 3, 1)
    except (OSError, EOFError, pickle.UnpicklingError, KeyError, ValueError, TypeError) as err:
        raise _corrupt(path, f"{type(err).__name__}: {err}") from None
    return images, labels.reshape(-1, 1)


def _read_cifar_pickles(folder: Path, known: dict[str, str] | None):
    files = [*CIFAR_BATCHES, "test_batch"]
    if not all((folder / f).is_file() for f in files):
        return None
    if known is not None:
        for f in files:
            if file_sha256(folder / f) != known[f]:
                raise _corrupt(folder / f, "SHA-256 differs from the manifest")
    parts = [_load_cifar_batch(folder / f) for f in CIFAR_BATCHES]
    x_train = np.concatenate([p[0] for p in parts])
    y_train = np.concatenate([p[1] for p in parts])
    x_test, y_test = _load_cifar_batch(folder / "test_batch")
    return (x_train, y_train), (x_test, y_test)


def _cifar_genuine_reader(directory: Path):
    # Keras extracts its tarball into cifar-10-batches-py-target/cifar-10-batches-py.
    for folder in (
        directory / "cifar-10-batches-py",
        directory / "cifar-10-batches-py-target" / "cifar-10-batches-py",
    ):
        arrays = _read_cifar_pickles(folder, None)
        if arrays is not None:
            return arrays, "CIFAR-10 original python pickles", False
    return None


_RECONSTRUCTED = "cifar-10-jpeg-reconstructed/cifar-10-batches-py"


def _cifar_reconstructed_reader(directory: Path):
    entry = manifest()["cifar10"]["files"][_RECONSTRUCTED]
    arrays = _read_cifar_pickles(directory / _RECONSTRUCTED, entry["sha256"])
    if arrays is None:
        return None
    return arrays, entry["provenance"], True


READERS: dict[str, list[Reader]] = {
    "mnist": [_npz_reader("mnist.npz", "mnist")],
    "fashion_mnist": [_npz_reader("fashion-mnist.npz", "fashion_mnist"), _read_keras_fashion],
    # Genuine copies anywhere beat the lossy reconstruction (see `_locate`).
    "cifar10": [_cifar_genuine_reader, _cifar_reconstructed_reader],
    "cifar10_exact": [_npz_reader("cifar10-exact-subset.npz", "cifar10_exact")],
}

HOW_TO_FIX = {
    "mnist": "mnist.npz",
    "fashion_mnist": "fashion-mnist.npz (or Keras's fashion-mnist/*.gz)",
    "cifar10": "cifar-10-batches-py/ (or cifar-10-jpeg-reconstructed/cifar-10-batches-py/)",
    "cifar10_exact": "cifar10-exact-subset.npz",
}


def _allow_download(allow: bool | None) -> bool:
    if allow is not None:
        return allow
    return settings.downloads_allowed()


def _not_found(name: str, dirs: list[Path]) -> DatasetError:
    looked = "\n".join(f"  - {d}" for d in dirs)
    return DatasetError(
        f"Could not find the {manifest()[name]['title']} data set offline. Looked for "
        f"{HOW_TO_FIX[name]} in:\n{looked}\n"
        f"Fix one of:\n"
        f"  * put the course data next to the repo (../shared/data) or in ./data;\n"
        f"  * export {DATA_ENV}=/path/to/data;\n"
        f"  * install them from the folder or archive the course hands out (or --url URL_BASE):\n"
        f"    {sys.executable} -m dlcourse data install DIR --from FOLDER_OR_ARCHIVE, then export "
        f"{DATA_ENV}=DIR;\n"
        f"  * when online, export {DOWNLOAD_ENV}=1 to let Keras download the genuine files."
    )


_warned_lossy: set[Path] = set()


def _locate(name: str, path: str | os.PathLike | None) -> tuple[Arrays, Found] | None:
    dirs = search_dirs(path)
    fallback: tuple[Arrays, Found] | None = None
    for reader in READERS[name]:
        for directory in dirs:
            result = reader(directory)
            if result is None:
                continue
            arrays, provenance, lossy = result
            found = Found(name, directory, provenance, lossy)
            validate(name, arrays, directory)
            if not lossy:
                return arrays, found
            fallback = fallback or (arrays, found)
    return fallback


def _download(name: str) -> Arrays:
    import keras

    loaders = {
        "mnist": keras.datasets.mnist.load_data,
        "fashion_mnist": keras.datasets.fashion_mnist.load_data,
        "cifar10": keras.datasets.cifar10.load_data,
    }
    if name not in loaders:
        raise DatasetError(f"{name} is not available from Keras; it ships with the course data")
    return validate(name, loaders[name](), "Keras download")


def find(name: str, path: str | os.PathLike | None = None) -> Found:
    """Where `name` would be loaded from (raises DatasetError when nowhere)."""
    located = _locate(name, path)
    if located is None:
        raise _not_found(name, search_dirs(path))
    return located[1]


def load(
    name: str, path: str | os.PathLike | None = None, *, allow_download: bool | None = None
) -> Arrays:
    if name not in READERS:
        raise ValueError(f"unknown data set {name!r}; choose from {sorted(READERS)}")
    located = _locate(name, path)
    if located is None:
        if _allow_download(allow_download):
            return _download(name)
        raise _not_found(name, search_dirs(path))
    arrays, found = located
    if found.lossy and found.location not in _warned_lossy:
        _warned_lossy.add(found.location)
        warnings.warn(
            f"Using {found.location / _RECONSTRUCTED}: {found.provenance}. Accuracies are "
            f"close to, not equal to, those on the original CIFAR-10. For genuine pixels use "
            f"load_cifar10(subset='exact') (4000 train / 1000 test images).",
            LossyDataWarning,
            stacklevel=3,
        )
    return arrays


def load_mnist(path: str | os.PathLike | None = None, **kw) -> Arrays:
    return load("mnist", path, **kw)


def load_fashion_mnist(path: str | os.PathLike | None = None, **kw) -> Arrays:
    return load("fashion_mnist", path, **kw)


def load_cifar10(
    path: str | os.PathLike | None = None, *, subset: str | None = None, **kw
) -> Arrays:
    """CIFAR-10 as Keras returns it; `subset="exact"` gives the genuine 4000/1000 subset."""
    if subset is None:
        return load("cifar10", path, **kw)
    if subset == "exact":
        return load("cifar10_exact", path, **kw)
    raise ValueError("subset must be None (all 50000/10000 images) or 'exact'")
