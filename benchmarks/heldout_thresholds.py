"""Thresholds of ws05's open-ended training exercise, measured: what models reach on the grader's
held-out images within the exercise's time budget, on one CPU thread (a grading kernel's quota).

Usage:

    .venv/bin/python benchmarks/heldout_thresholds.py     # about 4 min on a quiet core

Each row trains on the worksheet's training images (the first 50000 Fashion-MNIST training
images; the worksheet keeps the last 10000 for validation) and reports the wall time, the
validation accuracy and the accuracy on a held-out set built as the grader builds it
(`dlcourse.grader.heldout.build`, with a throwaway key). Two attacks are measured as well:
exact pixel lookup of the held-out images in the labelled test split, and a nearest-neighbour
search against the test split (plain L2, no shift search).
"""

from __future__ import annotations

import os
import secrets
import sys
import time
from pathlib import Path

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))


def main() -> None:
    import numpy as np
    import tensorflow as tf

    tf.config.threading.set_intra_op_parallelism_threads(1)
    tf.config.threading.set_inter_op_parallelism_threads(1)
    import keras
    from keras import layers

    from dlcourse.data import load_fashion_mnist
    from dlcourse.grader import heldout

    (x, y), (x_test, y_test) = load_fashion_mnist()
    x = x.astype(np.float32) / 255.0
    x_fit, y_fit, x_val, y_val = x[:50000], y[:50000], x[50000:], y[50000:]
    images, labels = heldout.build(secrets.token_bytes(32))
    held = images.astype(np.float32) / 255.0

    def keras_row(name, model, epochs, batch=128):
        keras.utils.set_random_seed(0)
        model.compile("adam", keras.losses.SparseCategoricalCrossentropy(from_logits=True))
        start = time.perf_counter()
        model.fit(x_fit[..., None], y_fit, epochs=epochs, batch_size=batch, verbose=0)
        took = time.perf_counter() - start
        val = np.argmax(model.predict(x_val[..., None], verbose=0, batch_size=1000), axis=1)
        out = np.argmax(model.predict(held[..., None], verbose=0, batch_size=1000), axis=1)
        return name, took, float(np.mean(val == y_val)), float(np.mean(out == labels))

    def seq(*body):
        return keras.Sequential([keras.Input((28, 28, 1)), *body])

    def small_cnn():  # the reference's CNN: 8 and 16 filters, each conv followed by a pooling
        return seq(
            layers.Conv2D(8, 3, activation="relu", padding="same"),
            layers.MaxPooling2D(),
            layers.Conv2D(16, 3, activation="relu", padding="same"),
            layers.MaxPooling2D(),
            layers.Flatten(),
            layers.Dense(10),
        )

    rows = []
    # nearest class mean: no training at all
    start = time.perf_counter()
    means = np.stack([x_fit[y_fit == c].mean(0) for c in range(10)])

    def near(a):
        d = ((a[:, None] - means[None]) ** 2).sum((2, 3))
        return d.argmin(1)

    rows.append(
        (
            "nearest class mean (no training)",
            time.perf_counter() - start,
            float(np.mean(near(x_val) == y_val)),
            float(np.mean(near(held) == labels)),
        )
    )
    rows.append(
        keras_row("logistic regression, 1 epoch", seq(layers.Flatten(), layers.Dense(10)), 1)
    )
    rows.append(
        keras_row("logistic regression, 3 epochs", seq(layers.Flatten(), layers.Dense(10)), 3)
    )
    rows.append(
        keras_row(
            "MLP 128, 2 epochs",
            seq(layers.Flatten(), layers.Dense(128, activation="relu"), layers.Dense(10)),
            2,
        )
    )
    rows.append(
        keras_row(
            "small CNN (8, 16 filters), 1 epoch (the reference)",
            small_cnn(),
            1,
        )
    )
    rows.append(
        keras_row(
            "small CNN (8, 16 filters), 2 epochs",
            small_cnn(),
            2,
        )
    )
    # attacks
    flat_test = x_test.reshape(len(x_test), -1)
    table = {row.tobytes(): int(lab) for row, lab in zip(flat_test, y_test, strict=True)}
    found = [table.get(img.reshape(-1).tobytes()) for img in images]
    hits = sum(f is not None for f in found)
    start = time.perf_counter()
    t = flat_test.astype(np.float32) / 255.0
    h = held.reshape(len(held), -1)
    d = (h**2).sum(1)[:, None] - 2 * h @ t.T + (t**2).sum(1)[None]
    nn = y_test[d.argmin(1)]
    nn_took = time.perf_counter() - start
    print(f"{'model':55s} {'seconds':>8s} {'val':>6s} {'held-out':>9s}")
    for name, took, val, out in rows:
        print(f"{name:55s} {took:8.1f} {val:6.3f} {out:9.3f}")
    print(f"exact pixel lookup in the test split: {hits} of {len(images)} found")
    print(
        f"nearest neighbour in the test split (L2, no shift search): "
        f"{float(np.mean(nn == labels)):.3f} in {nn_took:.1f} s"
    )


if __name__ == "__main__":
    main()
