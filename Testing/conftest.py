"""Shared fixtures: real data from ../shared/data (skipped with a message when absent) and small models."""
from __future__ import annotations

import os
from pathlib import Path

import pytest
import torch

REPO = Path(__file__).resolve().parents[1]
DATA = Path(os.environ.get("HSAM_TEST_DATA", REPO.parent / "shared" / "data"))


@pytest.fixture(scope="session")
def data_dir() -> Path:
    if not DATA.is_dir():
        pytest.skip(f"test data folder {DATA} not found (set HSAM_TEST_DATA)")
    return DATA


@pytest.fixture(scope="session")
def ct_slice(data_dir):
    """The middle axial slice of a real BTCV CT, windowed to [0, 1], as a (1, 3, 256, 256) batch."""
    from hsam.io.slices import middle_slice

    return middle_slice(data_dir / "btcv_synapse" / "256" / "case0005_ct.nii.gz", 256)


@pytest.fixture(scope="session")
def tiny_model(tmp_path_factory):
    """A tiny random-weight model directory with the BTCV organ card (tests only read it)."""
    from model_fixtures import tiny_model_dir

    return tiny_model_dir(tmp_path_factory.mktemp("model") / "tiny")


@pytest.fixture(scope="module")
def tiny(tmp_path_factory):
    """A tiny random-weight one-organ model directory ("tiny-liver"), one per test module."""
    from model_fixtures import tiny_liver_model_dir

    return tiny_liver_model_dir(tmp_path_factory.mktemp("tiny") / "tiny-liver")


@pytest.fixture(autouse=True)
def _deterministic():
    torch.manual_seed(0)
    torch.set_num_threads(max(1, min(2, os.cpu_count() or 1)))
