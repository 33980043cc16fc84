"""``hsam segment``: volumes in, organ labels out, on exactly the input grid."""
from __future__ import annotations

import argparse
import sys
from typing import List

from ..io.volume import VolumeError
from ..progress import EXIT_ERROR, Reporter, make_reporter
from ..stop import EXIT_STOPPED, StopRequest, StopRequested
from .segment_plan import Job, plan_jobs

DEFAULT_MODEL_ID = "hsam-abdomen-ct"


def run(args: argparse.Namespace) -> int:
    from ..infer.device import choose_device
    from ..infer.segment import segment_file
    from ..infer.slice_predictor import SlicePredictor
    from ..model.weights import CheckpointError
    from ..models import load_model
    from ..models.card import ModelCardError

    reporter = make_reporter(args.progress)
    stop = StopRequest()
    stop.install_signal_handlers()
    try:
        # Outputs are checked before the model loads: a bad -o fails in a second, never after the computation.
        plan = plan_jobs(args.input, args.output, args.format, args.uncertainty)
        device = choose_device(args.device, reporter.log)
        model = load_model(args.model, device=device)
        # On a CPU one slice per pass is as fast as larger batches (measured: docs/inference.md) and needs less RAM.
        batch_size = args.batch_size or (8 if device.type == "cuda" else 1)
        predictor = SlicePredictor(model, device, batch_size, reporter.log, args.precision)
        failed: List[Job] = []
        for index, job in enumerate(plan.jobs):
            try:
                out = segment_file(predictor, job.input, job.output, args.organs, not args.no_postprocess,
                                   job.uncertainty, reporter, stop)
            except (VolumeError, ValueError, OSError) as exc:
                if not plan.batch:
                    raise
                # One bad volume in a batch: say so and go on with the others; the exit status reports it.
                failed.append(job)
                _report_failure(reporter, args.progress, str(exc), job, index, len(plan.jobs))
                continue
            reporter.event("result", path=str(out), input=str(job.input), index=index, total=len(plan.jobs),
                           uncertainty=str(job.uncertainty) if job.uncertainty else None)
    except StopRequested:
        reporter.close()
        reporter.event("error", message="cancelled; no output was written for the interrupted volume",
                       cancelled=True)
        return EXIT_STOPPED
    except (VolumeError, CheckpointError, ModelCardError, ValueError, OSError) as exc:
        reporter.close()
        if args.progress == "jsonl":
            reporter.event("error", message=str(exc))
        raise
    reporter.close()
    if failed:
        summary = (f"{len(failed)} of {len(plan.jobs)} inputs failed ({', '.join(str(j.input) for j in failed)}); "
                   f"the other {len(plan.jobs) - len(failed)} results are written")
        if args.progress == "jsonl":
            reporter.event("error", message=summary, failed=[str(j.input) for j in failed], total=len(plan.jobs))
        print(f"hsam: error: {summary}", file=sys.stderr)
        return EXIT_ERROR
    return 0


def _report_failure(reporter: Reporter, progress: str, message: str, job: Job, index: int, total: int) -> None:
    reporter.close()  # end a progress bar before the line
    if progress == "jsonl":
        reporter.event("error", message=message, input=str(job.input), index=index, total=total)
    print(f"hsam: error: {message}", file=sys.stderr)


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
    p.add_argument("--uncertainty", help="also write a per-voxel uncertainty map (entropy of fused probabilities; "
                   ".nii.gz, .nrrd or .mha); for several inputs any value turns it on, with maps named "
                   "<input>_uncertainty.nii.gz")
    p.add_argument("--format", default=".seg.nrrd", help="output suffix for folder/list inputs")
    p.add_argument("--progress", choices=["tqdm", "jsonl"], default="tqdm", help="jsonl: one JSON event per line")
    p.set_defaults(func=run)
