"""Box prompts (hsam/infer/box_prompts.py): boxes from H-SAM's labels, LiteMedSAM's published box decoder on a real
slice, and the mix of its answer into H-SAM's probabilities."""
from __future__ import annotations

import numpy as np
import pytest
import SimpleITK as sitk
import torch
from scipy import ndimage

import hsam
from hsam.infer.box_prompts import MARGIN, BoxPrompts, organ_boxes
from hsam.infer.slice_predictor import SlicePredictor
from hsam.io.orientation import to_canonical
from hsam.io.volume import read_image
from hsam.network.backbones import build_backbone, load_pretrained
from hsam.network.box_decoder import load_litemedsam_box_decoder

SPLEEN_IN_FILE, SPLEEN_IN_MODEL = 7, 1  # the spleen in the BTCV label files and in the shipped model


def test_an_organs_box_covers_its_pieces_but_not_its_specks():
    labels = np.zeros((256, 256), np.uint8)
    labels[20:30, 40:60] = 6  # a pancreas in two pieces on this slice
    labels[22:32, 80:100] = 6
    labels[200:202, 200:202] = 6  # a 4-pixel speck far away
    labels[100:102, 10:13] = 2  # an organ shown only as a speck: no box
    labels[250:256, 0:8] = 4  # at the edge: the widened box stops there
    organs, boxes = organ_boxes(labels, classes=9)
    assert organs == [4, 6]
    assert boxes.tolist() == [[0, 250 - MARGIN, 7 + MARGIN, 255],
                              [40 - MARGIN, 20 - MARGIN, 99 + MARGIN, 31 + MARGIN]]


@pytest.fixture(scope="module")
def spleen_slice(data_dir):
    """(embedding (1, 256, 64, 64) from the real LiteMedSAM encoder, spleen mask (256, 256)) of case0005's
    middle slice."""
    folder = data_dir / "btcv_synapse" / "256"
    from hsam.io.slices import middle_slice

    image = middle_slice(folder / "case0005_ct.nii.gz", 256)
    label = sitk.GetArrayFromImage(to_canonical(read_image(folder / "case0005_label.nii.gz"))[0])
    spleen = torch.from_numpy(label[label.shape[0] // 2] == SPLEEN_IN_FILE)
    assert spleen.shape == (256, 256) and spleen.sum() > 1000
    backbone = build_backbone("litemedsam").eval()
    load_pretrained(backbone)
    with torch.no_grad():
        return backbone(image), spleen


def _dice(a: torch.Tensor, b: torch.Tensor) -> float:
    return float(2 * (a & b).sum() / (a.sum() + b.sum()))


def test_the_published_decoder_finds_the_spleen_in_its_box(spleen_slice):
    embedding, spleen = spleen_slice
    decoder = load_litemedsam_box_decoder()
    assert not any(p.requires_grad for p in decoder.parameters())
    _, boxes = organ_boxes(spleen.numpy().astype(np.uint8), classes=2)
    with torch.no_grad():
        logits = decoder(embedding, boxes)
    assert logits.shape == (1, 256, 256)
    assert _dice(logits[0] > 0, spleen) > 0.9
    # The same box with x and y swapped is somewhere else: the answer no longer matches (coordinates are x, y).
    with torch.no_grad():
        swapped = decoder(embedding, boxes[:, [1, 0, 3, 2]])
    assert _dice(swapped[0] > 0, spleen) < 0.6


def test_the_mix_mends_a_shrunken_organ_and_leaves_empty_slices_alone(spleen_slice):
    embedding, spleen = spleen_slice
    shrunk = torch.from_numpy(ndimage.binary_erosion(spleen.numpy(), iterations=2))  # too small (Dice 0.89)
    probs = torch.stack([torch.where(shrunk, 0.3, 0.7), torch.where(shrunk, 0.7, 0.3)])[None]
    empty = torch.stack([torch.full((256, 256), 0.8), torch.full((256, 256), 0.2)])[None]
    refine = BoxPrompts(load_litemedsam_box_decoder(), weight=1.0).refine
    with torch.no_grad():
        out = refine(torch.cat([embedding, embedding]), torch.cat([probs, empty]))
    torch.testing.assert_close(out.sum(1), torch.ones(2, 256, 256))
    torch.testing.assert_close(out[1], empty[0])
    mended = out[0].argmax(0).bool()
    assert _dice(mended, spleen) > _dice(shrunk, spleen) + 0.05
    assert _dice(mended, spleen) > 0.95


def test_box_prompts_need_the_litemedsam_backbone():
    model = hsam.build_hsam(hsam.HSAMConfig(backbone="litemedsam_tiny"), "random", seed=3).eval()
    model.card = {"normalization": {"kind": "ct_window", "window": [-125, 275]}}
    with pytest.raises(ValueError, match="LiteMedSAM backbone"):
        SlicePredictor(model, torch.device("cpu"), box_prompts=0.5)
    with pytest.raises(ValueError, match="box prompt weight"):
        BoxPrompts(load_litemedsam_box_decoder(), weight=0.0)


def test_the_shipped_model_with_box_prompts_segments_real_slices(data_dir):
    """Through the predictor as ``hsam segment --box-prompts`` runs it: 4 slices of a real CT with the bundled model."""
    folder = data_dir / "btcv_synapse" / "256"
    image = sitk.GetArrayFromImage(to_canonical(read_image(folder / "case0005_ct.nii.gz"))[0]).astype(np.float32)
    label = sitk.GetArrayFromImage(to_canonical(read_image(folder / "case0005_label.nii.gz"))[0])
    middle = image.shape[0] // 2
    volume, truth = image[middle - 2:middle + 2], label[middle - 2:middle + 2] == SPLEEN_IN_FILE
    results = {}
    for weight in (0.0, 0.5):
        model = hsam.load_model("hsam-abdomen-ct")
        predictor = SlicePredictor(model, torch.device("cpu"), batch_size=2, precision="fp32", box_prompts=weight)
        results[weight], _ = predictor.predict(volume)
    assert (results[0.0] != results[0.5]).any()
    spleen = {w: _dice(torch.from_numpy(r == SPLEEN_IN_MODEL), torch.from_numpy(truth)) for w, r in results.items()}
    assert spleen[0.5] > 0.9 and spleen[0.5] > spleen[0.0] - 0.02
