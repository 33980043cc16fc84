"""``hsam segment``: volumes in, organ labels out, on exactly the input grid."""
from __future__ import annotations

import argparse
from pathlib import Path
from typing import List, Tuple

from ..io.volume import VolumeError
from ..progress import EXIT_CANCELLED, Cancelled, StopFlag, make_reporter

VOLUME_SUFFIXES = (".nii.gz", ".nii", ".nrrd", ".mha", ".mhd")
DEFAULT_MODEL_ID = "hsam-abdomen-ct"


def _is_volume_file(path: Path) -> bool:
    return path.is_file() and path.name.lower().endswith(VOLUME_SUFFIXES) and \
        not path.name.lower().endswith(".seg.nrrd")


def plan_jobs(inputs: str, output: str, fmt: str) -> List[Tuple[Path, Path]]:
    """(input, output) pairs: one file or DICOM folder, a folder of volume files, or a .txt list of paths."""
    src, dst = Path(inputs), Path(output)
    if src.is_file() and src.suffix.lower() == ".txt":
        sources = [Path(line.strip()) for line in src.read_text().splitlines() if line.strip()]
    elif src.is_dir() and any(_is_volume_file(p) for p in src.iterdir()):
        sources = sorted(p for p in src.iterdir() if _is_volume_file(p))
    else:
        return [(src, dst)]
    if dst.suffix and not dst.is_dir():
        raise ValueError(f"{output}: several inputs need an output folder, not a file name")
    return [(s, dst / (_stem(s) + fmt)) for s in sources]


def _stem(path: Path) -> str:
    name = path.name
    for suffix in VOLUME_SUFFIXES:
        if name.lower().endswith(suffix):
            return name[: -len(suffix)]
    return name


def run(args: argparse.Namespace) -> int:
    from ..infer.device import choose_device
    from ..infer.segment import segment_file
    from ..infer.slice_predictor import SlicePredictor
    from ..model.weights import CheckpointError
    from ..models import load_model
    from ..models.card import ModelCardError

    reporter = make_reporter(args.progress)
    stop = StopFlag()
    stop.install_signal_handlers()
    try:
        jobs = plan_jobs(args.input, args.output, args.format)
        device = choose_device(args.device, reporter.log)
        model = load_model(args.model, device=device)
        # On a CPU one slice per pass is as fast as larger batches (measured: docs/inference.md) and needs less RAM.
        batch_size = args.batch_size or (8 if device.type == "cuda" else 1)
        predictor = SlicePredictor(model, device, batch_size, reporter.log, args.precision)
        for index, (src, dst) in enumerate(jobs):
            uncertainty = None
            if args.uncertainty:
                uncertainty = Path(args.uncertainty) if len(jobs) == 1 else dst.with_name(
                    _stem(dst).replace(".seg", "") + "_uncertainty.nii.gz")
            out = segment_file(predictor, src, dst, args.organs, not args.no_postprocess, uncertainty, reporter,
                               stop)
            reporter.event("result", path=str(out), input=str(src), index=index, total=len(jobs),
                           uncertainty=str(uncertainty) if uncertainty else None)
    except Cancelled:
        reporter.close()
        reporter.event("error", message="cancelled; no output was written for the interrupted volume",
                       cancelled=True)
        return EXIT_CANCELLED
    except (VolumeError, CheckpointError, ModelCardError, ValueError, OSError) as exc:
        reporter.close()
        if args.progress == "jsonl":
            reporter.event("error", message=str(exc))
        raise
    reporter.close()
    return 0


def register(sub) -> None:
    p = sub.add_parser("segment", help="segment organs in CT volumes")
    p.add_argument("input", help="volume file, DICOM series folder, folder of volumes, or .txt list of paths")
    p.add_argument("-o", "--output", required=True, help="output file (.seg.nrrd, .nii.gz, .nrrd) or folder")
    p.add_argument("--model", default=DEFAULT_MODEL_ID, help="model id or model directory")
    p.add_argument("--device", default="auto", help="auto, cpu, cuda, cuda:N or mps")
    p.add_argument("--batch-size", type=int, help="slices per forward pass (default 8 on a GPU, halved on "
                   "out-of-memory; 1 on a CPU)")
    p.add_argument("--precision", default="auto", choices=["auto", "fp32", "bf16", "fp16"],
                   help="auto: bf16/fp16 autocast on CUDA, fp32 on CPU")
    p.add_argument("--organs", nargs="+", help="only these organs (names from the model card)")
    p.add_argument("--no-postprocess", action="store_true", help="keep every island (default: largest per organ)")
    p.add_argument("--uncertainty", help="also write a per-voxel uncertainty map (entropy of fused probabilities)")
    p.add_argument("--format", default=".seg.nrrd", help="output suffix for folder/list inputs")
    p.add_argument("--progress", choices=["tqdm", "jsonl"], default="tqdm", help="jsonl: one JSON event per line")
    p.set_defaults(func=run)
