"""``hsam convert-official``: the authors' released files -> a model directory."""
from __future__ import annotations

import argparse


def run(args: argparse.Namespace) -> int:
    from ..models.convert import convert_official

    out = convert_official(args.sam_checkpoint, args.hsam_checkpoint, args.out, args.id)
    print(f"converted model written to {out}")
    return 0


def register(sub) -> None:
    p = sub.add_parser("convert-official", help="convert the authors' released H-SAM checkpoint")
    p.add_argument("--sam-checkpoint", required=True, help="official SAM file, e.g. sam_vit_b_01ec64.pth")
    p.add_argument("--hsam-checkpoint", required=True, help="released H-SAM file, e.g. 220_epoch_299.pth")
    p.add_argument("--out", required=True, help="model directory to write")
    p.add_argument("--id", help="model id (default from the file name)")
    p.set_defaults(func=run)
