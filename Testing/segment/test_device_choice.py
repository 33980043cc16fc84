"""One device choice and one precision rule for segmentation and training (hsam/infer/device.py, hsam/precision.py)."""
from __future__ import annotations

import pytest
import torch

from hsam.infer.device import choose_device
from hsam.precision import PRECISIONS, active_autocast_dtype, requested_autocast_dtype
from hsam.train.errors import TrainingError
from hsam.train.settings import TrainSettings
from hsam.train.trainer import train


def test_auto_picks_the_gpu_pytorch_sees_and_says_so_when_there_is_none():
    logged = []
    device = choose_device("auto", logged.append, auto_picks_mps=False)
    assert device.type == ("cuda" if torch.cuda.is_available() else "cpu")
    assert bool(logged) == (device.type == "cpu")
    if logged:
        assert "no GPU found" in logged[0]


def test_cpu_and_unusable_devices():
    assert choose_device("CPU") == torch.device("cpu")
    with pytest.raises(ValueError, match="unknown device 'gpu'"):
        choose_device("gpu")
    visible = torch.cuda.device_count() if torch.cuda.is_available() else 0
    with pytest.raises(ValueError, match=f"device cuda:{visible}: "):
        choose_device(f"cuda:{visible}")  # one past the last visible GPU (or any, without CUDA)


@pytest.mark.skipif(torch.cuda.is_available(), reason="needs a machine without CUDA")
def test_training_reports_a_missing_gpu_before_reading_any_case(tmp_path):
    settings = TrainSettings(out=str(tmp_path / "out"), cases=[("missing-image.nii.gz", "missing-label.nii.gz")],
                             device="cuda", progress="none")
    with pytest.raises(TrainingError, match="device cuda: no CUDA GPU is available here; use --device cpu or auto"):
        train(settings)
    with pytest.raises(TrainingError, match="unknown device 'tpu'"):
        train(TrainSettings(out=str(tmp_path / "out"), cases=settings.cases, device="tpu", progress="none"))


def test_requested_precision_gives_the_autocast_dtype():
    cpu = torch.device("cpu")
    assert requested_autocast_dtype(cpu, "auto") is None  # fp32 on a CPU unless asked
    assert requested_autocast_dtype(cpu, "fp32") is None
    assert requested_autocast_dtype(cpu, "bf16") is torch.bfloat16
    assert requested_autocast_dtype(cpu, "fp16") is torch.float16
    assert set(PRECISIONS) == {"auto", "fp32", "bf16", "fp16"}
    with pytest.raises(ValueError, match="precision must be one of"):
        requested_autocast_dtype(cpu, "fp8")


def test_active_autocast_dtype_follows_the_autocast_in_force():
    assert active_autocast_dtype("cpu") is None
    with torch.autocast("cpu", dtype=torch.bfloat16):
        assert active_autocast_dtype("cpu") is torch.bfloat16
    assert active_autocast_dtype("cpu") is None
