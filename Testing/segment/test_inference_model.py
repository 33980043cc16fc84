"""The model as inference rewrites it (hsam/infer/inference_model.py): the same outputs in float32, bf16 weights
stored once with the intensity-reading layer kept float32, labels of the default model as in float32."""
from __future__ import annotations

import copy

import numpy as np
import pytest
import torch
import torch.nn as nn

import hsam
from hsam.infer.embedding_store import weights_digest
from hsam.infer.inference_model import Float32, GemmWindowAttention, fold_batch_norms, prepare_for_inference
from hsam.infer.slice_predictor import SlicePredictor
from hsam.models import load_model
from hsam.network.tiny_vit import WindowAttention

CPU = torch.device("cpu")


def _tiny_with_real_statistics():
    """A tiny LiteMedSAM H-SAM whose batch norms and attention biases are not the identity/zero they start as."""
    model = hsam.build_hsam(hsam.HSAMConfig(backbone="litemedsam_tiny"), "random", seed=4).eval()
    generator = torch.Generator().manual_seed(0)
    for module in model.modules():
        if isinstance(module, nn.BatchNorm2d):
            module.running_mean.copy_(torch.randn(module.num_features, generator=generator) * 0.3)
            module.running_var.copy_(torch.rand(module.num_features, generator=generator) + 0.5)
            module.weight.data.copy_(torch.rand(module.num_features, generator=generator) + 0.5)
            module.bias.data.copy_(torch.randn(module.num_features, generator=generator) * 0.1)
        if isinstance(module, WindowAttention):
            module.attention_biases.data.copy_(torch.randn(module.attention_biases.shape, generator=generator))
    return model


def test_float32_outputs_match_the_model_as_loaded():
    model = _tiny_with_real_statistics()
    prepared = copy.deepcopy(model)
    prepare_for_inference(prepared, CPU, None)
    assert not any(isinstance(m, nn.BatchNorm2d) for m in prepared.modules())
    assert any(isinstance(m, GemmWindowAttention) for m in prepared.modules())
    x = torch.rand(2, 3, 64, 64)
    with torch.inference_mode():
        expected = model(x)["fused"]
        got = prepared(x.contiguous(memory_format=torch.channels_last))["fused"]
    assert expected.abs().max() > 0.1
    torch.testing.assert_close(got, expected, rtol=1e-4, atol=1e-4)


def test_batch_norm_folding_is_exact_for_a_convolution_with_bias():
    conv = nn.Conv2d(3, 5, 3, padding=1, bias=True)
    norm = nn.BatchNorm2d(5).eval()
    norm.running_mean.normal_()
    norm.running_var.uniform_(0.5, 2.0)
    pair = nn.Sequential(conv, norm)
    x = torch.randn(2, 3, 8, 8)
    with torch.no_grad():
        expected = pair(x)
        assert fold_batch_norms(pair) == 1
        torch.testing.assert_close(pair(x), expected, rtol=1e-5, atol=1e-5)
    assert isinstance(pair[1], nn.Identity)


def test_bf16_stores_weights_once_and_keeps_the_intensity_layer_float32():
    model = _tiny_with_real_statistics()
    reference = copy.deepcopy(model)
    prepare_for_inference(model, CPU, torch.bfloat16)
    encoder = model.backbone.encoder
    assert isinstance(encoder.patch_embed, Float32)
    assert all(p.dtype == torch.float32 for p in encoder.patch_embed.parameters())
    assert encoder.layers[0].blocks[0].conv1.c.weight.dtype == torch.bfloat16
    decoder_layers = [m for m in model.stage1.modules() if isinstance(m, (nn.Linear, nn.ConvTranspose2d))]
    assert decoder_layers and all(m.weight.dtype == torch.bfloat16 for m in decoder_layers)
    x = torch.rand(2, 3, 64, 64)
    with torch.inference_mode():
        expected = reference(x)["fused"].float()
        with torch.autocast("cpu", dtype=torch.bfloat16):
            got = model(x.contiguous(memory_format=torch.channels_last))["fused"].float()
    assert (got - expected).abs().max() < 0.1 * expected.abs().max()
    with pytest.raises(ValueError, match="prepared for torch.bfloat16"):
        prepare_for_inference(model, CPU, None)


def test_an_embedding_store_keeps_the_encoder_as_loaded(tmp_path):
    model = _tiny_with_real_statistics()
    model.card = {"normalization": {"kind": "ct_window", "window": [-125, 275]}}
    before = weights_digest(model.backbone.encoder)
    predictor = SlicePredictor(model, CPU, batch_size=2, precision="fp32", embedding_store=str(tmp_path / "store"))
    # Its stored embeddings are shared with training, which encodes with the encoder as loaded.
    encoder = predictor.model.backbone.encoder
    assert encoder.identity == before
    assert not any(isinstance(m, GemmWindowAttention) for m in encoder.modules())
    assert any(isinstance(m, nn.BatchNorm2d) for m in encoder.modules())


def test_the_default_model_in_bf16_labels_real_slices_as_in_float32(data_dir):
    import SimpleITK as sitk

    from hsam.infer import previous_pipeline

    volume = sitk.GetArrayFromImage(sitk.ReadImage(str(data_dir / "btcv_synapse" / "256" / "case0026_ct.nii.gz")))
    slices = volume[60:64]
    float32 = previous_pipeline.predict_labels(previous_pipeline.load("hsam-abdomen-ct"), slices)
    assert len(np.unique(float32)) >= 4  # organs are there to disagree on
    for precision, least in (("fp32", 1.0), ("bf16", 0.998)):
        # The card's inference options off: the previous pipeline has none, and this compares the precision.
        predictor = SlicePredictor(load_model("hsam-abdomen-ct"), CPU, batch_size=1, precision=precision,
                                   slice_smoothing=0.0, box_prompts=0.0)
        labels = predictor.predict(slices).labels
        assert np.mean(labels == float32) >= least, precision
