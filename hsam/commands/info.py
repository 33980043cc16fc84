"""``hsam info``: build or load a model, count its parameters, optionally run one CT slice."""
from __future__ import annotations

import argparse
import time
from typing import Dict


def parameter_report(model) -> Dict[str, Dict[str, int]]:
    """Parameter counts per component: total and trainable."""
    report = {}
    for name in ("backbone", "prompt", "stage1", "cmattn", "stage2"):
        module = getattr(model, name)
        if module is None:
            continue
        params = list(module.parameters())
        report[name] = {"total": sum(p.numel() for p in params),
                        "trainable": sum(p.numel() for p in params if p.requires_grad)}
    report["all"] = {k: sum(v[k] for v in report.values()) for k in ("total", "trainable")}
    return report


def run(args: argparse.Namespace) -> int:
    import torch

    from ..model import HSAMConfig, build_hsam
    from ..models import load_model

    if args.model:
        model = load_model(args.model, merge_lora=False)
    else:
        config = HSAMConfig(backbone=args.backbone, lora_rank=args.rank)
        model = build_hsam(config, "random" if args.random else "pretrained", checkpoint=args.checkpoint)
    cfg = model.config
    print(f"backbone {cfg.backbone} ({model.img_size}x{model.img_size} input), mode {cfg.mode}, "
          f"{cfg.num_classes} classes, LoRA rank {cfg.lora_rank}")
    for name, counts in parameter_report(model).items():
        print(f"  {name:9s} {counts['total'] / 1e6:9.3f} M parameters, {counts['trainable'] / 1e6:8.3f} M trainable")
    if args.image:
        from ..io.slices import middle_slice

        batch = middle_slice(args.image, model.img_size)
        start = time.perf_counter()
        out = model.predict_logits(batch)
        elapsed = time.perf_counter() - start
        shapes = ", ".join(f"{k} {tuple(v.shape)}" for k, v in out.items())
        labels = torch.bincount(out["fused"].argmax(1).flatten(), minlength=cfg.num_classes).tolist()
        print(f"one slice of {args.image}: {shapes} in {elapsed:.2f} s; pixels per class {labels}")
    return 0


def register(sub) -> None:
    p = sub.add_parser("info", help="build or load a model, count its parameters, optionally run one CT slice")
    p.add_argument("model", nargs="?", help="model directory or installed id (default: build from --backbone)")
    p.add_argument("--backbone", default="litemedsam", help="backbone when no model is given")
    p.add_argument("--rank", type=int, default=4, help="LoRA rank when no model is given")
    p.add_argument("--checkpoint", help="base weights file for SAM ViT backbones")
    p.add_argument("--random", action="store_true", help="random base weights (no checkpoint needed)")
    p.add_argument("--image", help="a CT volume: run its middle axial slice through the model")
    p.set_defaults(func=run)
