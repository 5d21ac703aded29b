"""One line per epoch with the elapsed time and an estimate of the rest.

`model.fit(..., verbose=0, callbacks=[EpochProgress()])` prints, after every epoch,

    epoch 3/12 done: 52 s elapsed, about 208 s left

so that a long training cell in class shows more than `[*]`. The times differ between runs
and machines; tests/nbval_sanitize.cfg replaces them (and nothing else on the line) before
nbval compares outputs.
"""

from __future__ import annotations

import sys
import time

import keras


class EpochProgress(keras.callbacks.Callback):
    """Print `epoch i/n done: T s elapsed, about R s left` after each epoch."""

    def __init__(self, stream=None):
        super().__init__()
        self.stream = stream
        self.start = 0.0
        self.total = 0

    def on_train_begin(self, logs=None):
        self.start = time.perf_counter()
        self.total = int(self.params.get("epochs") or 0)

    def on_epoch_end(self, epoch, logs=None):
        done = epoch + 1
        elapsed = time.perf_counter() - self.start
        left = elapsed / done * max(self.total - done, 0)
        print(
            f"epoch {done}/{self.total} done: {elapsed:.0f} s elapsed, about {left:.0f} s left",
            file=self.stream or sys.stdout,
            flush=True,
        )


class ScalarLog(keras.callbacks.Callback):
    """The epoch scalars of `keras.callbacks.TensorBoard`, written without the tensorboard package.

    `keras.callbacks.TensorBoard` needs `pip install tensorboard` to write anything; this
    callback writes the same `train/` and `validation/` event files (`epoch_loss`,
    `epoch_accuracy`, ...) with TensorFlow's core summary op, so that a notebook can log on an
    install without TensorBoard. Viewing the logs needs TensorBoard either way.
    """

    def __init__(self, log_dir):
        super().__init__()
        self.log_dir = str(log_dir)
        self.writers = {}

    def _writer(self, split):
        import os

        import tensorflow as tf

        if split not in self.writers:
            self.writers[split] = tf.summary.create_file_writer(os.path.join(self.log_dir, split))
        return self.writers[split]

    def on_epoch_end(self, epoch, logs=None):
        import tensorflow as tf
        from tensorflow.core.framework import summary_pb2

        metadata = summary_pb2.SummaryMetadata()
        metadata.plugin_data.plugin_name = "scalars"
        for key, value in (logs or {}).items():
            split, name = ("validation", key[4:]) if key.startswith("val_") else ("train", key)
            with self._writer(split).as_default():
                tf.summary.write(
                    f"epoch_{name}",
                    tf.constant(float(value), tf.float32),
                    step=epoch,
                    metadata=metadata,
                )

    def on_train_end(self, logs=None):
        for writer in self.writers.values():
            writer.close()


def tensorboard_callback(log_dir):
    """`keras.callbacks.TensorBoard(log_dir)` when tensorboard is installed, else `ScalarLog`."""
    import importlib.util

    if importlib.util.find_spec("tensorboard") is not None:
        return keras.callbacks.TensorBoard(log_dir=str(log_dir), write_graph=False)
    return ScalarLog(log_dir)
