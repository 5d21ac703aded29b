"""Held-out accuracy: the open-ended training exercise's grade, worked out by the grader.

The exercise lets a student train any classifier; the hidden test records the labels it
predicts for images the grader staged, and the credit comes from comparing those predictions
with labels that exist only in the grader's process. What the kernel prints or records about
its own accuracy counts for nothing.

The held-out set (`build`): `N` Fashion-MNIST test images drawn by a course key, each shifted
by up to one pixel in each direction and given a little noise drawn from the same key
(`dlcourse.heldout.perturb`), stored as uint8. The key (32 random bytes) lives in the course's
private folder (`grading/heldout.key`, 0600), which no kernel can see; it is made on first use,
so every student and every re-grade of a course get the same set. `stage` writes only the
images into the kernel's scratch working directory before the kernel starts
(`dlcourse.grader.sandbox.Scratch`); the labels are looked up again here, in the grader, when
the verdict is decided (`credit`).

What this prevents, and what it does not (README's threat model says the same):
- the labels never enter the kernel, not even the hidden test's locals, so no code in the
  kernel can read them, and a forged accuracy (printed, recorded, or a constant label)
  earns what its predictions earn;
- the staged pixels are in no data set: looking them up by exact pixel match in the data sets
  the kernel can read (Fashion-MNIST with labels) finds nothing;
- not prevented by the perturbation alone: a nearest-neighbour search, tolerant to shifts and
  noise, against the labelled test split. That is a classifier trained on the test split; the
  exercise's method rule forbids the answer from loading data sets or files itself (it trains
  on the arrays it is given), so only code that hides its loading from the rule gets there.
"""

from __future__ import annotations

import hashlib
import os
import secrets
from functools import lru_cache
from pathlib import Path
from typing import Any

import numpy as np

from dlcourse.grader import verdict
from dlcourse.heldout import FILENAME, perturb

KIND = "heldout_accuracy"
N = 5000
KEY_NAME = "heldout.key"
# Only notebooks whose source calls this get the images staged.
MARKER = "heldout_images("

_active_key: bytes | None = None


# --- the set --------------------------------------------------------------------------------


def key_for(private: Path) -> bytes:
    """The course's key, made (0600, in the grader's private folder) on first use."""
    path = Path(private) / KEY_NAME
    if not path.is_file():
        path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
        tmp = path.with_name(f".{KEY_NAME}.{os.getpid()}.tmp")
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        with os.fdopen(fd, "wb") as f:
            f.write(secrets.token_bytes(32))
        try:
            os.link(tmp, path)  # the first writer wins; a concurrent one reads its key
        except FileExistsError:
            pass
        finally:
            tmp.unlink()
    key = path.read_bytes()
    if len(key) < 16:
        raise ValueError(f"{path}: the held-out key is too short")
    return key


def _rng(key: bytes) -> np.random.Generator:
    seed = int.from_bytes(hashlib.sha256(b"dlcourse heldout v1\0" + key).digest(), "big")
    return np.random.default_rng(seed)


@lru_cache(maxsize=2)
def build(key: bytes, n: int = N) -> tuple[np.ndarray, np.ndarray]:
    """(images uint8 (n, 28, 28), labels int64 (n,)): perturbed test images and their labels."""
    from dlcourse.data import load_fashion_mnist

    _, (x_test, y_test) = load_fashion_mnist()
    rng = _rng(key)
    index = rng.choice(len(x_test), size=n, replace=False)
    images = perturb(x_test[index], rng)
    labels = np.asarray(y_test, np.int64).reshape(-1)[index]
    return images, labels


# --- staging, in the grader before the kernel starts ----------------------------------------


def needed(nb: Any) -> bool:
    """Whether a notebook's cells ask for the held-out images."""
    return any(MARKER in str(cell.get("source", "")) for cell in nb.get("cells", []))


def prepare(private: Path) -> bytes:
    """Make this process ready to stage and to judge: the course's key, remembered here."""
    global _active_key
    _active_key = key_for(private)
    return _active_key


def _course_key() -> bytes | None:
    """The key of the course this process runs in, when it has one already (a verdict decided
    without a kernel run in this process)."""
    from dlcourse import settings

    root = settings.course_root()
    path = root / "grading" / KEY_NAME if root is not None else None
    return key_for(path.parent) if path is not None and path.is_file() else None


def stage(workdir: Path, key: bytes) -> Path:
    """Write the held-out images (no labels) into a kernel's scratch working directory."""
    images, _ = build(key)
    path = Path(workdir) / FILENAME
    with open(path, "wb") as f:
        np.save(f, images, allow_pickle=False)
    path.chmod(0o644)  # the kernel may run as a user of its own
    return path


# --- the credit, in the grader when the verdict is decided ----------------------------------


def accuracy(predicted: Any, labels: np.ndarray) -> float | None:
    """The share of `predicted` equal to `labels`; None when `predicted` is not one whole-number
    label per image."""
    if isinstance(predicted, list):
        try:
            predicted = np.asarray(predicted)
        except (ValueError, TypeError):
            return None
    if not isinstance(predicted, np.ndarray) or predicted.dtype.kind not in "iuf":
        return None
    flat = predicted.reshape(-1) if predicted.ndim == 2 and predicted.shape[1] == 1 else predicted
    if flat.shape != labels.shape:
        return None
    if flat.dtype.kind == "f" and not np.all(np.isfinite(flat) & (flat == np.round(flat))):
        return None
    return float(np.mean(flat.astype(np.int64) == labels))


def score(acc: float, partial: float, full: float, partial_credit: float) -> float:
    """1 from `full` up, `partial_credit` from `partial` up, else 0: steps, so that a score
    does not move with the last digit of an accuracy."""
    if acc >= full:
        return 1.0
    return partial_credit if acc >= partial else 0.0


def _params(expected: verdict.Probe) -> tuple[float, float, float]:
    p = expected.params
    partial, full = float(p["partial"]), float(p["full"])
    partial_credit = float(p.get("partial_credit", 0.5))
    if not 0.0 <= partial < full <= 1.0 or not 0.0 <= partial_credit <= 1.0:
        raise ValueError("bad held-out thresholds")
    return partial, full, partial_credit


def credit(
    expected: verdict.Probe, got: verdict.Probe | None, shown: verdict.Shown
) -> tuple[float, str | None]:
    """The credit of the recorded predictions, from labels held here, and a message with the
    accuracy and the thresholds (both stated in the worksheet); `shown` changes nothing."""
    partial, full, partial_credit = _params(expected)
    key = expected.key
    if got is None:
        return 0.0, f"{key}: no predictions were recorded"
    held = _active_key or _course_key()
    if held is None:
        return 0.0, f"{key}: the grader has no held-out set here"
    _, labels = build(held)
    try:
        predicted = verdict.decode(got.value)
    except (verdict.Malformed, RecursionError):
        return 0.0, f"{key}: the predictions could not be read"
    acc = accuracy(predicted, labels)
    if acc is None:
        return 0.0, f"{key}: expected one integer label per held-out image ({len(labels)})"
    value = score(acc, partial, full, partial_credit)
    if value >= 1.0:
        return 1.0, None
    # The accuracy is the grader's own number (from labels the kernel never had), so every
    # wording may say it; it quotes nothing of the kernel's.
    said = f"accuracy {acc:.3f} on the held-out images"
    if value == 0.0:
        return 0.0, f"{key}: {said}, below {partial:.2f} (partial credit from {partial:.2f})"
    return value, f"{key}: {said}: partial credit (full credit from {full:.2f})"


verdict.register_credit_kind(KIND, credit)
