"""One call to make a notebook reproducible."""

from __future__ import annotations

import os
import random

import numpy as np

DEFAULT_SEED = 42


def seed_everything(seed: int = DEFAULT_SEED, *, deterministic_ops: bool = False) -> int:
    """Seed Python, NumPy and TensorFlow/Keras; optionally force deterministic TF kernels.

    Deterministic ops make GPU training bit-for-bit repeatable at some speed cost; on CPU
    they mostly matter for multi-threaded reductions.
    """
    os.environ["PYTHONHASHSEED"] = str(seed)
    random.seed(seed)
    np.random.seed(seed)
    import keras
    import tensorflow as tf

    keras.utils.set_random_seed(seed)
    if deterministic_ops:
        tf.config.experimental.enable_op_determinism()
    return seed
