"""``hsam segment``: volumes in, organ labels out, on exactly the input grid.

Under ``torchrun`` the volumes of a folder or list are shared among the processes (one model on each process's
GPU, ``shard_jobs``), each volume written by exactly one of them; at the end every process learns what the others
did, and rank 0 reports the failures of all (docs/command-line.md, "Many volumes on many GPUs").
"""
from __future__ import annotations

import argparse
import datetime
import hashlib
import sys
import traceback
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, List, Optional, Tuple

from ..io.volume import VolumeError
from ..progress import EXIT_ERROR, Reporter, make_reporter
from ..stop import EXIT_STOPPED, StopRequest, StopRequested
from . import add_slice_options
from .segment_plan import Job, Plan, plan_jobs, shard_jobs

if TYPE_CHECKING:
    import torch

DEFAULT_MODEL_ID = "hsam-abdomen-ct"
# Processes that finish their share wait at the end for the slowest one; torch's default timeout (30 minutes for
# gloo) would end a run whose largest share takes longer. A process that dies is noticed by torchrun, which then
# ends the others, so a long wait never hangs on a dead process.
SHARE_WAIT = datetime.timedelta(days=1)


@dataclass
class ShareOutcome:
    """What one process did with its share of the volumes; gathered on every process at the end."""

    written: int = 0
    failed: List[Tuple[int, str, str]] = field(default_factory=list)  # (index in the plan, input, message)
    stopped: bool = False


def run(args: argparse.Namespace) -> int:
    from ..distributed import gather_objects, init_from_environment, is_initialized, process_device, shutdown
    from ..infer.device import choose_device
    from ..models.card import ModelCardError
    from ..weights import CheckpointError

    reporter = make_reporter(args.progress)
    stop = StopRequest()
    stop.install_signal_handlers()
    try:
        # Outputs are checked before the model loads: a bad -o fails in a second, never after the computation.
        plan = plan_jobs(args.input, args.output, args.format, args.uncertainty)
        device = choose_device(args.device, reporter.log)
        joined_here = not is_initialized()  # a process group made by a caller is left to it
        world = init_from_environment(device, SHARE_WAIT)
        try:
            device = process_device(device, world)
            if world.distributed:
                _check_same_plan(gather_objects(_plan_signature(plan)))
                if not world.is_main and args.progress != "jsonl":
                    reporter = _WithoutBars(reporter)  # its bars would overwrite rank 0's on the same terminal
            share = shard_jobs(plan.jobs, world.rank, world.size)
            outcomes = gather_objects(_segment_share(args, plan, share, device, world.rank if world.distributed
                                                     else None, reporter, stop))
        finally:
            if joined_here:
                shutdown()
    except (VolumeError, CheckpointError, ModelCardError, ValueError, OSError) as exc:
        reporter.close()
        if args.progress == "jsonl":
            reporter.event("error", message=str(exc))
        raise
    reporter.close()
    return _report_outcomes(outcomes, plan, world.is_main, reporter, args.progress)


def _segment_share(args: argparse.Namespace, plan: Plan, share: List[Tuple[int, Job]], device: torch.device,
                   rank: Optional[int], reporter: Reporter, stop: StopRequest) -> ShareOutcome:
    """Segment this process's ``share`` of the plan; ``rank`` is None in a world of one."""
    from ..infer.segment import segment_file
    from ..infer.slice_predictor import SlicePredictor
    from ..models import load_model

    outcome = ShareOutcome()
    if not share:
        return outcome  # more processes than volumes
    model = load_model(args.model, device=device)
    # On a CPU one slice per pass is as fast as larger batches (measured: docs/inference.md) and needs less RAM.
    batch_size = args.batch_size or (8 if device.type == "cuda" else 1)
    predictor = SlicePredictor(model, device, batch_size, reporter.log, args.precision,
                                slice_smoothing=args.slice_smoothing, box_prompts=args.box_prompts)
    # One bad volume among several, or in any process's share, must not stop the others: it is reported and the
    # exit status says so. A single volume in a single process fails the command as it is.
    keep_going = plan.batch or rank is not None
    ranked = {} if rank is None else {"rank": rank}
    total = len(plan.jobs)
    for index, job in share:
        try:
            out = segment_file(predictor, job.input, job.output, args.organs, not args.no_postprocess,
                               job.uncertainty, reporter, stop)
        except StopRequested:
            outcome.stopped = True
            break
        except Exception as exc:
            if not keep_going:
                raise
            expected = isinstance(exc, (VolumeError, ValueError, OSError))
            if not expected:
                traceback.print_exc()  # an engine bug: its traceback, for the report, before going on
            message = str(exc) if expected else f"{job.input}: {type(exc).__name__}: {exc}"
            outcome.failed.append((index, str(job.input), message))
            _report_failure(reporter, args.progress, message, job, index, total, ranked)
            continue
        outcome.written += 1
        reporter.event("result", path=str(out), input=str(job.input), index=index, total=total,
                       uncertainty=str(job.uncertainty) if job.uncertainty else None, **ranked)
    return outcome


def _report_outcomes(outcomes: List[ShareOutcome], plan: Plan, is_main: bool, reporter: Reporter,
                     progress: str) -> int:
    """Rank 0 says what happened over all processes and ends with the exit status of the whole run. The other
    processes end with 0 once their share is done and reported: torchrun ends every process as soon as one fails,
    which could stop rank 0 before it has written the summary."""
    if not is_main:
        return 0
    total = len(plan.jobs)
    failed = sorted(failure for outcome in outcomes for failure in outcome.failed)
    if any(outcome.stopped for outcome in outcomes):
        written = sum(outcome.written for outcome in outcomes)
        reporter.event("error", message="cancelled; no output was written for the interrupted volume" +
                       (f" ({written} of {total} volumes written)" if len(outcomes) > 1 else ""), cancelled=True)
        return EXIT_STOPPED
    if failed:
        summary = (f"{len(failed)} of {total} inputs failed ({', '.join(name for _, name, _ in failed)}); "
                   f"the other {total - len(failed)} results are written")
        if progress == "jsonl":
            reporter.event("error", message=summary, failed=[name for _, name, _ in failed],
                           messages=[message for _, _, message in failed], total=total)
        print(f"hsam: error: {summary}", file=sys.stderr)
    elif len(outcomes) > 1:
        reporter.log(f"{total} volumes segmented by {len(outcomes)} processes (" +
                     ", ".join(f"rank {rank}: {outcome.written}" for rank, outcome in enumerate(outcomes)) + ")")
    return EXIT_ERROR if failed else 0


def _plan_signature(plan: Plan) -> Tuple[int, str]:
    text = "\n".join(f"{job.input}\t{job.output}" for job in plan.jobs)
    return len(plan.jobs), hashlib.sha256(text.encode("utf-8", "surrogateescape")).hexdigest()


def _check_same_plan(signatures: List[Tuple[int, str]]) -> None:
    """Every process must split the same list, or some volumes would be segmented twice and others never."""
    if any(signature != signatures[0] for signature in signatures):
        counts = ", ".join(f"rank {rank}: {count}" for rank, (count, _) in enumerate(signatures))
        raise ValueError(f"the processes see different inputs or outputs ({counts} volumes): give every process "
                         "the same input list and -o, on a file system all nodes share")


class _WithoutBars(Reporter):
    """A reporter that leaves out progress bars (processes other than rank 0 on a terminal)."""

    def __init__(self, inner: Reporter) -> None:
        self.inner = inner

    def event(self, name: str, **fields: Any) -> None:
        if name != "progress":
            self.inner.event(name, **fields)

    def close(self) -> None:
        self.inner.close()


def _report_failure(reporter: Reporter, progress: str, message: str, job: Job, index: int, total: int,
                    ranked: dict) -> None:
    reporter.close()  # end a progress bar before the line
    if progress == "jsonl":
        reporter.event("error", message=message, input=str(job.input), index=index, total=total, **ranked)
    print(f"hsam: error: {message}", file=sys.stderr)


def register(sub) -> None:
    p = sub.add_parser("segment", help="segment organs in CT volumes (under torchrun: shared among the processes)")
    p.add_argument("input", help="volume file, DICOM series folder, folder of volumes, or .txt list of paths")
    p.add_argument("-o", "--output", required=True, help="output file (.seg.nrrd, .nii.gz, .nrrd) or folder")
    p.add_argument("--model", default=DEFAULT_MODEL_ID, help="model id or model directory")
    p.add_argument("--device", default="auto", help="auto, cpu, cuda, cuda:N or mps (under torchrun, any CUDA "
                   "device means cuda:LOCAL_RANK)")
    p.add_argument("--batch-size", type=int, help="slices per forward pass (default 8 on a GPU, halved on "
                   "out-of-memory; 1 on a CPU)")
    p.add_argument("--precision", default="auto", choices=["auto", "fp32", "bf16", "fp16"],
                   help="auto: bf16 on CUDA (fp16 without bf16) and on CPUs that compute bf16 natively "
                   "(avx512_bf16 or amx_bf16 in /proc/cpuinfo), fp32 elsewhere")
    p.add_argument("--organs", nargs="+", help="only these organs (names from the model card)")
    p.add_argument("--no-postprocess", action="store_true", help="keep every island (default: largest per organ)")
    add_slice_options(p)
    p.add_argument("--uncertainty", help="also write a per-voxel uncertainty map (entropy of fused probabilities; "
                   ".nii.gz, .nrrd or .mha); for several inputs any value turns it on, with maps named "
                   "<input>_uncertainty.nii.gz")
    p.add_argument("--format", default=".seg.nrrd", help="output suffix for folder/list inputs")
    p.add_argument("--progress", choices=["tqdm", "jsonl"], default="tqdm", help="jsonl: one JSON event per line")
    p.set_defaults(func=run)
