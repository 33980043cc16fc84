"""``--embedding-store``: frozen-encoder embeddings kept on disk and reused by later training runs and evaluations,
and the ablation switches that make such runs worth comparing."""
from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch
from safetensors.torch import load_file

from hsam.infer.slice_predictor import SlicePredictor
from hsam.models import load_model
from hsam.train import TrainingError, train
from train_fixtures import btcv_pairs, tiny_settings


def _stored(store: Path):
    return sorted(p.name for p in store.rglob("*.npy"))


def _weights(model_dir: Path):
    return load_file(str(model_dir / "weights.safetensors"))


@pytest.fixture(scope="module")
def stored_run(data_dir, tmp_path_factory):
    root = tmp_path_factory.mktemp("store")
    settings = tiny_settings(root / "first", btcv_pairs(data_dir), freeze_encoder=True, cached_views=2, epochs=1,
                             embedding_store=str(root / "store"))
    train(settings)
    return root, settings


def test_a_later_run_reads_every_embedding_from_the_store_and_trains_the_same_weights(stored_run, tmp_path):
    root, settings = stored_run
    before = _stored(root / "store")
    # 2 training cases x 3 slices x 2 views, plus 2 slices of the validation case
    assert len(before) == 14
    settings.out, plain = str(tmp_path / "again"), tmp_path / "plain"
    train(settings)
    assert _stored(root / "store") == before  # nothing encoded a second time
    settings.out, settings.embedding_store = str(plain), None
    train(settings)
    again, reference = _weights(tmp_path / "again"), _weights(plain)
    assert again.keys() == reference.keys()
    assert all(torch.equal(again[k], reference[k]) for k in reference)


def test_ablation_switches_build_the_named_architecture_on_the_same_stored_embeddings(stored_run, tmp_path):
    root, settings = stored_run
    before = _stored(root / "store")
    for name, switches, expected in [
        ("stage1", dict(stage2=False), dict(stage2=False)),
        ("no-parts", dict(cmattn=False, mask_attention=False, pixel_decoder=False),
         dict(stage2=True, cmattn=False, mask_attention=False, pixel_decoder=False)),
    ]:
        settings.out = str(tmp_path / name)
        settings.stage2, settings.cmattn, settings.mask_attention, settings.pixel_decoder = True, True, True, True
        for key, value in switches.items():
            setattr(settings, key, value)
        train(settings)
        config = json.loads((tmp_path / name / "model.json").read_text())["config"]
        assert {k: config[k] for k in expected} == expected
        model = load_model(tmp_path / name)
        assert (model.stage2 is None) == (not expected["stage2"])
        if expected["stage2"]:
            assert model.cmattn is None and model.stage2.pixel_decoder is None
    assert _stored(root / "store") == before


def test_inference_reuses_the_store_and_gives_the_same_labels(stored_run, data_dir, tmp_path):
    root, _ = stored_run
    model_dir = root / "first"
    volume = np.load(_a_few_slices(data_dir, tmp_path))
    device = torch.device("cpu")
    plain = SlicePredictor(load_model(model_dir), device, batch_size=2, precision="fp32").predict(volume).labels
    store = tmp_path / "inference-store"
    first = SlicePredictor(load_model(model_dir), device, batch_size=2, precision="fp32", embedding_store=str(store))
    assert np.array_equal(first.predict(volume).labels, plain)
    assert len(_stored(store)) == len(volume)
    second = SlicePredictor(load_model(model_dir), device, batch_size=3, precision="fp32",
                            embedding_store=str(store))
    assert np.array_equal(second.predict(volume).labels, plain)
    encoder = second.model.backbone.encoder
    assert (encoder.store.hits, encoder.store.misses) == (len(volume), 0)
    # Another precision is another embedding: it misses instead of reading the float32 one.
    bf16 = SlicePredictor(load_model(model_dir), device, batch_size=4, precision="bf16", embedding_store=str(store))
    bf16.predict(volume)
    assert bf16.model.backbone.encoder.store.misses == len(volume)


def _a_few_slices(data_dir: Path, tmp_path: Path) -> Path:
    import SimpleITK as sitk

    image = sitk.ReadImage(str(data_dir / "btcv_synapse" / "256" / "case0026_ct.nii.gz"))
    path = tmp_path / "slices.npy"
    np.save(path, sitk.GetArrayFromImage(image)[60:64].astype(np.float32))
    return path


def test_bad_combinations_are_refused(stored_run, data_dir, tmp_path):
    root, _ = stored_run
    with pytest.raises(TrainingError, match="--embedding-store needs --freeze-encoder"):
        train(tiny_settings(tmp_path / "a", btcv_pairs(data_dir), embedding_store=str(tmp_path / "s")))
    with pytest.raises(TrainingError, match="architecture of a new model"):
        train(tiny_settings(tmp_path / "b", btcv_pairs(data_dir), base=str(root / "first"), stage2=False))
    with pytest.raises(TrainingError, match="fp16 trains on CUDA only"):
        train(tiny_settings(tmp_path / "c", btcv_pairs(data_dir), precision="fp16", device="cpu"))


def test_command_line_flags_reach_the_settings():
    from hsam.cli import build_parser
    from hsam.commands.train import settings_from_args

    args = build_parser().parse_args(["train", "--out", "m", "--case", "a.nii.gz", "b.nii.gz", "--freeze-encoder",
                                      "--embedding-store", "store", "--stage1-only", "--no-cmattn",
                                      "--no-mask-attention", "--no-pixel-decoder", "--precision", "bf16"])
    s = settings_from_args(args)
    assert (s.embedding_store, s.precision) == ("store", "bf16")
    assert not (s.stage2 or s.cmattn or s.mask_attention or s.pixel_decoder)
    defaults = settings_from_args(build_parser().parse_args(["train", "--out", "m"]))
    assert defaults.stage2 and defaults.cmattn and defaults.mask_attention and defaults.pixel_decoder
    assert (defaults.embedding_store, defaults.precision) == (None, "auto")
