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


def test_volumes_are_cut_or_extended_without_a_jump(data_dir, tmp_path):
    from hsam.infer.end_to_end import cut_volume

    source = data_dir / "btcv_synapse" / "256" / "case0027_ct.nii.gz"  # 88 slices
    array = sitk.GetArrayFromImage(sitk.ReadImage(str(source)))
    cut = sitk.ReadImage(str(cut_volume(source, tmp_path / "cut.nii.gz", slices=10)))
    assert (sitk.GetArrayFromImage(cut) == array[39:49]).all()
    deep = sitk.ReadImage(str(cut_volume(source, tmp_path / "deep.nii.gz", depth=200)))
    assert deep.GetSize() == (256, 256, 200) and deep.GetSpacing() == sitk.ReadImage(str(source)).GetSpacing()
    deep_array = sitk.GetArrayFromImage(deep)
    assert (deep_array[:88] == array).all() and (deep_array[88:176] == array[::-1]).all()
    assert (deep_array[176:] == array[:24]).all()
    assert cut_volume(source, tmp_path / "same.nii.gz") == source


def test_end_to_end_runs_the_previous_pipeline_and_the_default_side_by_side(data_dir, tmp_path):
    """The command in its short form: the real default model, 4 slices, each pipeline in its own process."""
    import subprocess
    import sys

    source = data_dir / "btcv_synapse" / "256" / "case0026_ct.nii.gz"
    run = subprocess.run([sys.executable, "-m", "hsam", "benchmark", str(source), "--end-to-end", "--slices", "4"],
                         capture_output=True, text=True, timeout=600)
    assert run.returncode == 0, run.stderr
    rows = [line.split("|")[1:-1] for line in run.stdout.splitlines() if line.startswith("| previous") or
            line.startswith("| default")]
    # The default model's card names inference options: the default also runs with them off, where the speed-ups
    # must keep the previous labels; with them on (as a user runs it) the labels change by design.
    assert [r[0].strip() for r in rows] == ["previous (fp32, before the speed-ups)", "default, inference options off",
                                            "default, slice_smoothing 0.25, box_prompts 0.5"]
    previous, options_off, default = rows
    assert previous[2].strip() == "1.00x" and float(default[2].strip().rstrip("x")) > 0
    assert all(float(row[3]) > 100 for row in rows)  # peak RSS of each process, in MB
    assert previous[4].strip() == "100.000%" and float(options_off[4].strip().rstrip("%")) >= 99.0
    assert 90.0 < float(default[4].strip().rstrip("%")) < 100.0
    assert "input: 256x256x4" in run.stdout and "memory budget: the model (" in run.stdout


def test_end_to_end_refuses_the_options_of_the_slice_benchmark(data_dir):
    from hsam.cli import main

    source = data_dir / "btcv_synapse" / "256" / "case0026_ct.nii.gz"
    assert main(["benchmark", str(source), "--end-to-end", "--random"]) == 1
