"""``hsam info``: describe a model (the default model unless told otherwise), count its parameters, optionally run
one CT slice; or, with ``--json``, report the installation for a bug report."""
from __future__ import annotations

import argparse
import json
import platform
import sys
import time
from pathlib import Path
from typing import Any, Dict, List, Optional

from .segment import DEFAULT_MODEL_ID

LOGS_FOLDER = "logs"  # HSAM_HOME/logs: where engine runs started by the Slicer modules leave their logs


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


def diagnostics() -> Dict[str, Any]:
    """What a bug report needs, as one JSON-ready object; each part that fails says why instead of failing all."""
    import hsam

    info: Dict[str, Any] = {"engine_version": hsam.__version__,
                            "python": f"{sys.version.split()[0]} ({sys.executable})",
                            "platform": platform.platform()}
    try:
        import torch

        info.update(torch=torch.__version__, cuda=torch.version.cuda,
                    gpus=[torch.cuda.get_device_name(i) for i in range(torch.cuda.device_count())])
    except Exception as exc:  # a broken torch is exactly what a report must show
        info.update(torch=f"cannot be imported: {exc}", cuda=None, gpus=[])
    from ..models.cache import hsam_home

    info["models_folder"] = str(hsam_home())
    try:
        from ..models.registry import list_models

        info["models"] = [{k: row[k] for k in ("id", "version", "state")} for row in list_models()]
    except Exception as exc:  # e.g. a broken site catalog (HSAM_CATALOG)
        info.update(models=[], models_error=str(exc))
    info["last_log"] = _last_log(hsam_home() / LOGS_FOLDER)
    return info


def _last_log(folder: Path) -> Optional[str]:
    logs: List[Path] = sorted(folder.glob("*.log"), key=lambda p: p.stat().st_mtime) if folder.is_dir() else []
    return str(logs[-1]) if logs else None


def run(args: argparse.Namespace) -> int:
    if args.json:
        print(json.dumps(diagnostics(), indent=2))
        return 0
    import torch

    from ..models import load_model
    from ..network import HSAMConfig, build_hsam

    untrained = args.backbone is not None or args.random or args.checkpoint is not None or args.rank is not None
    if untrained and args.model:
        raise ValueError("give a model, or --backbone/--rank/--checkpoint/--random for an untrained one, not both")
    if untrained:
        config = HSAMConfig(backbone=args.backbone or "litemedsam", lora_rank=4 if args.rank is None else args.rank)
        model = build_hsam(config, "random" if args.random else "pretrained", checkpoint=args.checkpoint)
        print(f"untrained H-SAM ({'random' if args.random else 'pretrained'} base weights, untrained decoders): "
              "an architecture, not a segmentation model")
    else:
        model = load_model(args.model or DEFAULT_MODEL_ID, merge_lora=False)
        card = model.card
        default = "" if args.model else ", the default model"
        print(f"model {card['id']} version {card.get('version', '1')}{default}: {card.get('title', '')}")
        names = [f"{label['value']} {label['name']}" for label in card["labels"]]
        print(f"  labels: {', '.join(names)}")
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
    p = sub.add_parser("info", help="describe a model (default: the default model) or, with --json, the "
                                    "installation for a bug report")
    p.add_argument("model", nargs="?", help=f"model directory or installed id (default: {DEFAULT_MODEL_ID})")
    p.add_argument("--json", action="store_true", help="print engine, Python, OS, PyTorch, CUDA, GPUs, models "
                   "folder, models and last log as one JSON object (for bug reports); no model is loaded")
    p.add_argument("--backbone", help="describe an untrained model with this backbone instead (e.g. litemedsam)")
    p.add_argument("--rank", type=int, help="LoRA rank of the untrained model (default 4)")
    p.add_argument("--checkpoint", help="base weights file for SAM ViT backbones of the untrained model")
    p.add_argument("--random", action="store_true", help="untrained model with random base weights")
    p.add_argument("--image", help="a CT volume: run its middle axial slice through the model")
    p.set_defaults(func=run)
