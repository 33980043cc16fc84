"""``hsam benchmark`` machinery on a tiny model: both paths run on the same slices and agree."""
from __future__ import annotations

import SimpleITK as sitk
import torch

import hsam
from hsam.infer.benchmark import format_rows, run_benchmark
from hsam.models import BTCV_8_ORGANS, make_card


def test_naive_and_batched_paths_agree(data_dir, tmp_path):
    model = hsam.build_hsam(hsam.HSAMConfig(backbone="litemedsam_tiny"), "random", seed=2)
    model.card = make_card(model, "tiny", {"source": "random", "seed": 2}, BTCV_8_ORGANS)
    ct = sitk.GetArrayFromImage(sitk.ReadImage(str(data_dir / "btcv_synapse" / "256" / "case0005_ct.nii.gz")))
    volume = ct[50:56, 96:160, 96:160]  # slices already at the model's 64x64 input: no resampling differences
    seen = []
    rows = run_benchmark(model, volume, torch.device("cpu"), batch_size=3, precisions=["fp32"],
                         on_progress=lambda variant, done, total: seen.append((variant, done, total)))
    naive, ours = rows
    # progress after every slice of the naive loop and every batch of ours, so a long run shows its time left
    assert [s for s in seen if s[0] == naive["variant"]] == [(naive["variant"], k, 6) for k in range(1, 7)]
    assert [s[1:] for s in seen if s[0] == ours["variant"]] == [(3, 6), (6, 6)]
    assert naive["speedup"] == 1.0 and ours["slices_per_s"] > 0 and naive["matmul_peak_gflops"] > 0
    assert ours["same_labels_as_naive"] >= 0.99
    assert naive["peak_rss_mb"] > 0 and 0 < ours["peak_fraction"]
    table = format_rows(rows)
    assert table.count("\n") == 3 and "naive" in table and "ours (batch 3, fp32, merged)" in table
