"""``hsam benchmark``: the naive per-slice loop and our batched path, side by side on one volume; with
``--end-to-end``, whole ``hsam segment`` runs (the previous pipeline and the default)."""
from __future__ import annotations

import argparse
import platform


def run(args: argparse.Namespace) -> int:
    if args.end_to_end:
        return run_end_to_end(args)
    import SimpleITK as sitk
    import torch

    from ..infer.benchmark import flops_per_slice, format_rows, run_benchmark
    from ..infer.device import choose_device
    from ..io.orientation import to_canonical
    from ..io.volume import read_image
    from ..models import load_model
    from ..models.card import CT_WINDOW
    from ..network import HSAMConfig, build_hsam
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


def run_end_to_end(args: argparse.Namespace) -> int:
    import tempfile
    from pathlib import Path

    import torch

    from ..infer.end_to_end import format_end_to_end, run_end_to_end
    from ..infer.threads import compute_threads
    from ..precision import inference_autocast_dtype
    from .segment import DEFAULT_MODEL_ID

    if args.backbone != "sam_vit_b" or args.random or args.checkpoint or args.precision or args.device != "auto":
        raise ValueError("--end-to-end runs hsam segment as it is by default: it takes --model, --slices, --depth "
                         "and --repeats only")
    model = args.model or DEFAULT_MODEL_ID
    precision = inference_autocast_dtype(torch.device("cpu"), "auto") or torch.float32
    print(f"hsam segment end to end on {args.volume} with {model}: the previous pipeline (fp32) and the default "
          f"({str(precision).replace('torch.', '')} on this CPU, {compute_threads()} compute threads), "
          f"{args.repeats} run(s) each, {platform.processor() or platform.machine()}, torch {torch.__version__}",
          flush=True)
    with tempfile.TemporaryDirectory(prefix="hsam-end-to-end-") as work:
        result = run_end_to_end(Path(args.volume), model, Path(work), args.slices, args.depth, args.repeats)
    x, y, z = result["size"]
    print(f"input: {x}x{y}x{z}, {result['input_mb']:.0f} MB of voxels")
    print(format_end_to_end(result))
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
    p.add_argument("--end-to-end", action="store_true",
                   help="whole hsam segment runs on the CPU, each in its own process: the previous fp32 pipeline "
                        "and the default, with time, speed-up, peak memory and label agreement")
    p.add_argument("--depth", type=int, help="--end-to-end: make the volume this many slices deep (a cut around "
                   "the middle, or mirrored copies of itself)")
    p.add_argument("--repeats", type=int, default=1, help="--end-to-end: runs of each pipeline (the median time)")
    p.set_defaults(func=run)
