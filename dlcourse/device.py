"""GPU/CPU detection: the first code cell of every notebook calls `setup()`.

`setup()` never fails on a machine without a GPU. It honours `CUDA_VISIBLE_DEVICES`
(TensorFlow only sees the GPUs listed there), turns on memory growth so a notebook does not
grab the whole card, optionally enables mixed precision on GPUs with tensor cores, and tells
the notebook whether to train in *quick* mode (CI, the autograder) or *full* mode (class).
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from typing import Any

from dlcourse import settings
from dlcourse.kernel_env import quiet_tensorflow_import

MIXED_PRECISION_MIN_CAPABILITY = (7, 0)

for _key, _value in settings.QUIET_TF.items():
    os.environ.setdefault(_key, _value)
# Before anything imports TensorFlow: its import-time C++ log lines stay off the notebook
# (dlcourse/kernel_env.py explains why TF_CPP_MIN_LOG_LEVEL alone is not enough).
quiet_tensorflow_import()


def quick_mode() -> bool:
    """True when training cells should use small, fast settings."""
    return settings.quick()


@dataclass(frozen=True)
class DeviceInfo:
    kind: str  # "GPU" or "CPU"
    gpus: tuple[str, ...]
    cpu_cores: int
    tf_version: str
    quick: bool
    mixed_precision: bool
    hidden_by_cuda_visible_devices: bool = False
    notes: tuple[str, ...] = field(default_factory=tuple)

    @property
    def batch_size(self) -> int:
        """A batch size that keeps the device busy without exhausting memory."""
        return 256 if self.kind == "GPU" else 128

    @property
    def epoch_scale(self) -> float:
        """Multiply a walkthrough's full-mode epoch count by this (rounding up to 1)."""
        return 0.1 if self.quick else 1.0

    def epochs(self, full: int, quick: int = 1) -> int:
        """Epochs to train: `full` in class, `quick` in CI and in the grader."""
        return quick if self.quick else full

    def subset(self, n_full: int, n_quick: int) -> int:
        """How many training examples to use."""
        return min(n_full, n_quick) if self.quick else n_full

    @property
    def banner(self) -> str:
        if self.kind == "GPU":
            where = f"Running on GPU ({', '.join(self.gpus)})"
            if self.mixed_precision:
                where += ", mixed precision on"
        else:
            cores = "core" if self.cpu_cores == 1 else "cores"
            where = f"Running on CPU ({self.cpu_cores} {cores})"
        speed = "quick" if self.quick else "full"
        text = f"{where} — TensorFlow {self.tf_version}; training cells use {speed} settings"
        if self.hidden_by_cuda_visible_devices:
            text += " (GPUs hidden by CUDA_VISIBLE_DEVICES)"
        return text


_cached: DeviceInfo | None = None


def _gpu_name(tf: Any, gpu: Any) -> str:
    try:
        details = tf.config.experimental.get_device_details(gpu)
    except Exception:  # noqa: BLE001 - details are optional and backend-dependent
        details = {}
    return str(details.get("device_name") or gpu.name)


def _compute_capability(tf: Any, gpu: Any) -> tuple[int, int] | None:
    try:
        details = tf.config.experimental.get_device_details(gpu)
    except Exception:  # noqa: BLE001
        return None
    cap = details.get("compute_capability")
    return tuple(cap) if cap else None


def _cpu_cores() -> int:
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:  # not Linux
        return os.cpu_count() or 1


def setup(
    *,
    mixed_precision: bool = False,
    quick: bool | None = None,
    verbose: bool = True,
) -> DeviceInfo:
    """Detect devices, configure TensorFlow for them, print a one-line banner.

    Calling it again returns the first result (TensorFlow cannot be reconfigured once it
    has initialised its devices).
    """
    global _cached
    if _cached is not None:
        if verbose:
            print(_cached.banner)
        return _cached

    import tensorflow as tf

    notes: list[str] = []
    gpus = tf.config.list_physical_devices("GPU")
    for gpu in gpus:
        try:
            tf.config.experimental.set_memory_growth(gpu, True)
        except RuntimeError as err:  # devices already initialised
            notes.append(f"memory growth not set: {err}")

    cores = _cpu_cores()
    if not gpus:
        try:
            tf.config.threading.set_intra_op_parallelism_threads(cores)
            tf.config.threading.set_inter_op_parallelism_threads(min(2, cores))
        except RuntimeError as err:
            notes.append(f"thread counts not set: {err}")

    use_mixed = False
    if gpus and mixed_precision:
        caps = [_compute_capability(tf, g) for g in gpus]
        if all(c is not None and c >= MIXED_PRECISION_MIN_CAPABILITY for c in caps):
            import keras

            keras.mixed_precision.set_global_policy("mixed_float16")
            use_mixed = True
        else:
            notes.append("mixed precision left off: GPU has no tensor cores (capability < 7.0)")

    visible = os.environ.get("CUDA_VISIBLE_DEVICES")
    hidden = visible is not None and visible.strip() in {"", "-1"} and not gpus

    info = DeviceInfo(
        kind="GPU" if gpus else "CPU",
        gpus=tuple(_gpu_name(tf, g) for g in gpus),
        cpu_cores=cores,
        tf_version=tf.__version__,
        quick=quick_mode() if quick is None else quick,
        mixed_precision=use_mixed,
        hidden_by_cuda_visible_devices=hidden,
        notes=tuple(notes),
    )
    _cached = info
    if verbose:
        print(info.banner)
    return info


def _reset_for_tests() -> None:
    global _cached
    _cached = None
