import os
import re
from types import SimpleNamespace

import keras
import pytest
import tensorflow as tf

from dlcourse import device


@pytest.fixture(autouse=True)
def fresh(monkeypatch):
    device._reset_for_tests()
    yield
    device._reset_for_tests()
    keras.mixed_precision.set_global_policy("float32")


def test_cpu_path_for_real(capsys, monkeypatch):
    monkeypatch.setenv("DLCOURSE_QUICK", "1")
    info = device.setup()
    assert info.kind == "CPU" and info.gpus == ()
    assert info.cpu_cores == len(os.sched_getaffinity(0))
    assert info.tf_version == tf.__version__
    assert info.quick and info.epochs(full=10) == 1 and info.batch_size == 128
    banner = capsys.readouterr().out.strip()
    assert re.fullmatch(
        rf"Running on CPU \({info.cpu_cores} cores?\) — TensorFlow {re.escape(tf.__version__)}; "
        r"training cells use quick settings",
        banner,
    )
    assert device.setup(verbose=False) is info  # idempotent


@pytest.mark.parametrize(
    ("env", "expected"),
    [
        ({"DLCOURSE_QUICK": "1"}, True),
        ({"DLCOURSE_QUICK": "0", "NBGRADER_EXECUTION": "autograde"}, False),
        ({"NBGRADER_EXECUTION": "autograde"}, True),
        ({}, False),
    ],
)
def test_quick_mode_switch(monkeypatch, env, expected):
    monkeypatch.delenv("DLCOURSE_QUICK", raising=False)
    monkeypatch.delenv("NBGRADER_EXECUTION", raising=False)
    for k, v in env.items():
        monkeypatch.setenv(k, v)
    assert device.quick_mode() is expected


class FakeGPUs:
    def __init__(self, monkeypatch, capabilities):
        self.gpus = [
            SimpleNamespace(name=f"/physical_device:GPU:{i}", device_type="GPU")
            for i in range(len(capabilities))
        ]
        self.details = {
            g.name: {"device_name": f"NVIDIA Fake {i}", "compute_capability": cap}
            for i, (g, cap) in enumerate(zip(self.gpus, capabilities, strict=True))
        }
        self.growth = []
        monkeypatch.setattr(
            tf.config,
            "list_physical_devices",
            lambda kind=None: list(self.gpus) if kind == "GPU" else [],
        )
        monkeypatch.setattr(
            tf.config.experimental,
            "set_memory_growth",
            lambda gpu, on: self.growth.append((gpu.name, on)),
        )
        monkeypatch.setattr(
            tf.config.experimental, "get_device_details", lambda gpu: self.details[gpu.name]
        )


def test_fake_gpu_memory_growth_and_name(monkeypatch, capsys):
    fake = FakeGPUs(monkeypatch, [(8, 0), (8, 0)])
    info = device.setup(quick=False)
    assert info.kind == "GPU" and info.gpus == ("NVIDIA Fake 0", "NVIDIA Fake 1")
    assert fake.growth == [("/physical_device:GPU:0", True), ("/physical_device:GPU:1", True)]
    assert not info.mixed_precision  # opt-in only
    assert info.batch_size == 256 and info.epochs(full=10) == 10
    assert capsys.readouterr().out.startswith("Running on GPU (NVIDIA Fake 0, NVIDIA Fake 1)")


def test_fake_gpu_mixed_precision_on_tensor_cores(monkeypatch):
    FakeGPUs(monkeypatch, [(8, 6)])
    info = device.setup(mixed_precision=True, verbose=False)
    assert info.mixed_precision
    assert keras.mixed_precision.global_policy().name == "mixed_float16"
    assert "mixed precision on" in info.banner


def test_fake_old_gpu_keeps_float32(monkeypatch):
    FakeGPUs(monkeypatch, [(6, 1)])
    info = device.setup(mixed_precision=True, verbose=False)
    assert not info.mixed_precision
    assert keras.mixed_precision.global_policy().name == "float32"
    assert any("capability" in n for n in info.notes)


def test_memory_growth_error_is_a_note_not_a_crash(monkeypatch):
    fake = FakeGPUs(monkeypatch, [(7, 5)])

    def fail(gpu, on):
        raise RuntimeError("Physical devices cannot be modified after being initialized")

    monkeypatch.setattr(tf.config.experimental, "set_memory_growth", fail)
    info = device.setup(verbose=False)
    assert info.kind == "GPU" and fake.gpus
    assert any("memory growth" in n for n in info.notes)


def test_cuda_visible_devices_hiding_gpus_is_reported(monkeypatch):
    monkeypatch.setenv("CUDA_VISIBLE_DEVICES", "")
    info = device.setup(verbose=False, quick=True)
    assert info.kind == "CPU"
    assert info.banner.endswith("(GPUs hidden by CUDA_VISIBLE_DEVICES)")
