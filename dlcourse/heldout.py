"""Kernel side of the open-ended training exercise: the grader's held-out images, no labels.

At grading, the grader stages a set of images into the kernel's working directory (a scratch
copy, never the course folder) before the kernel starts (`dlcourse.grader.heldout`). They are
Fashion-MNIST test images changed by a perturbation only the grader knows (a shift and noise
drawn from a key in the grader's private folder), so that looking them up in a data set by their
pixels finds nothing. Their labels never enter the kernel: the hidden test records the labels
the student's classifier predicts, and the grader computes the accuracy in its own process.

Outside grading (the student's own runs, the master's checks) nothing is staged and
`heldout_images()` returns None. `perturb` is the grader's perturbation with a generator of the
caller's choosing: a student can make shifted, noisy copies of a validation set and see what
the grader's images will do to a model (only the grader's key, never here, says which images
and which shifts).
"""

from __future__ import annotations

from pathlib import Path

FILENAME = "dlcourse_heldout_images.npy"
SHAPE = (28, 28)
MAX_SHIFT = 1  # pixels, each direction
NOISE = 0.04  # standard deviation, on the [0, 1] scale


def perturb(images: object, rng: object) -> object:
    """uint8 copies of uint8 images (n, 28, 28), each shifted by up to `MAX_SHIFT` pixels in
    each direction (zeros come in) and given Gaussian noise, both drawn from `rng`
    (a `numpy.random.Generator`)."""
    import numpy as np

    images = np.asarray(images)
    n = len(images)
    shifts = rng.integers(-MAX_SHIFT, MAX_SHIFT + 1, size=(n, 2))
    noise = rng.normal(0.0, NOISE * 255.0, size=(n, *SHAPE))
    out = np.empty((n, *SHAPE), np.uint8)
    for i in range(n):
        moved = _shift(images[i].astype(np.float64), int(shifts[i, 0]), int(shifts[i, 1]))
        out[i] = np.clip(np.rint(moved + noise[i]), 0, 255).astype(np.uint8)
    return out


def _shift(img: object, dy: int, dx: int) -> object:
    import numpy as np

    out = np.zeros_like(img)
    h, w = img.shape
    ys, yd = (slice(0, h - dy), slice(dy, h)) if dy >= 0 else (slice(-dy, h), slice(0, h + dy))
    xs, xd = (slice(0, w - dx), slice(dx, w)) if dx >= 0 else (slice(-dx, w), slice(0, w + dx))
    out[yd, xd] = img[ys, xs]
    return out


def heldout_images(folder: str | Path = ".") -> object:
    """The staged images as float32 in [0, 1], shape (n, 28, 28); None when none are staged."""
    import numpy as np

    path = Path(folder) / FILENAME
    if not path.is_file():
        return None
    raw = np.load(path, allow_pickle=False)
    if raw.dtype != np.uint8 or raw.ndim != 3 or raw.shape[1:] != SHAPE:
        return None
    return raw.astype(np.float32) / 255.0
