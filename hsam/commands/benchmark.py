"""``hsam benchmark``: the naive per-slice loop and our batched path, side by side on one volume."""
from __future__ import annotations

import argparse
import platform


def run(args: argparse.Namespace) -> int:
    import SimpleITK as sitk
    import torch

    from ..infer.benchmark import flops_per_slice, format_rows, run_benchmark
    from ..infer.device import choose_device
    from ..io.orientation import to_canonical
    from ..io.volume import read_image
    from ..model import HSAMConfig, build_hsam
    from ..models import load_model
    from ..models.card import CT_WINDOW
    from ..progress import ConsoleReporter

    device = choose_device(args.device, print)
    if args.model:
        model = load_model(args.model, merge_lora=False)
    else:
        model = build_hsam(HSAMConfig(backbone=args.backbone), "random" if args.random else "pretrained",
                           checkpoint=args.checkpoint)
        model.card = {"normalization": CT_WINDOW}
    canonical = to_canonical(read_image(args.volume))[0]
    volume = sitk.GetArrayFromImage(canonical)
    if args.slices:
        middle = volume.shape[0] // 2
        volume = volume[max(0, middle - args.slices // 2):][: args.slices]
    precisions = args.precision or ["fp32", "bf16"]
    gflop = flops_per_slice(model.to(device), model.img_size, device) / 1e9
    cpu = platform.processor() or platform.machine()
    print(f"{model.config.backbone} at {model.img_size}, {volume.shape[0]} slices of {args.volume} "
          f"({volume.shape[2]}x{volume.shape[1]}), {gflop:.1f} GFLOP per slice, device {device}"
          f"{' (' + torch.cuda.get_device_name(device) + ')' if device.type == 'cuda' else ''}, "
          f"{torch.get_num_threads()} CPU threads, {cpu}, torch {torch.__version__}", flush=True)
    # Each variant runs the whole volume (minutes for ViT-B on a CPU): a bar per variant with its time left.
    reporter = ConsoleReporter()
    rows = run_benchmark(model, volume, device, args.batch_size, precisions,
                         lambda variant, done, total: reporter.progress(done, total, stage=variant), gflop)
    reporter.close()
    print(format_rows(rows))
    return 0


def register(sub) -> None:
    p = sub.add_parser("benchmark", help="naive per-slice loop vs batched inference on one volume")
    p.add_argument("volume", help="CT volume to segment")
    p.add_argument("--model", help="model id or directory (default: build --backbone)")
    p.add_argument("--backbone", default="sam_vit_b")
    p.add_argument("--checkpoint", help="base weights for a SAM ViT backbone")
    p.add_argument("--random", action="store_true", help="random weights (speed only; labels are meaningless)")
    p.add_argument("--slices", type=int, help="only this many slices around the middle")
    p.add_argument("--batch-size", type=int, default=8)
    p.add_argument("--device", default="auto")
    p.add_argument("--precision", nargs="+", choices=["fp32", "bf16", "fp16"],
                   help="our variants to run (default: fp32 and bf16)")
    p.set_defaults(func=run)
