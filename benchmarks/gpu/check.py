"""The GPU check: what a CUDA machine does with the engine, in one table, from real ``hsam`` commands.

    bash benchmarks/gpu/run.sh OUT           # installs first (README.md beside this file)
    python benchmarks/gpu/check.py OUT [--quick] [--data DIR] [--model ID] [--train-seconds 120]

Measures (README.md beside this file says why and against which targets):
- labels of the default model on CUDA against the CPU, on a real CT (% of voxels, % of organ voxels);
- ``hsam benchmark`` of SAM ViT-B at 512 (random weights, batch 16, bf16) and of the default model on a
  512x512x150 CT: slices/s, speed-up over the naive per-slice loop, % of the bf16 matmul peak the benchmark
  measures, peak GPU memory; the default model's time for the whole volume;
- ``hsam segment`` of that CT, the whole command (start, model, reading, post-processing, writing);
- LoRA training throughput: ``hsam train`` for ``--train-seconds``, stopped through ``HSAM_STOP_FILE``.

Writes OUT/gpu_check.md (the table, the machine, the commands) and OUT/logs/ (every command's output); prints the
table. A part that fails gets a row saying so and the exit status 1; the other parts still run.
``--quick``: the same on the CPU with tiny sizes (3- and 6-slice crops, a tiny SAM ViT, a few seconds of LoRA on a
tiny backbone); with a tiny ``--model`` the tests run every step of it in about a minute.
"""
from __future__ import annotations

import argparse
import dataclasses
import json
import os
import platform
import shutil
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Dict, List, Optional, Tuple

import numpy as np

REPO = Path(__file__).resolve().parents[2]
DEFAULT_DATA = REPO.parent / "shared" / "data"  # the README's ../shared beside the checkout
LABEL_MAP = REPO / "docs" / "examples" / "btcv_synapse_labels.json"
DEFAULT_MODEL = "hsam-abdomen-ct"


@dataclass(frozen=True)
class Sizes:
    device: str
    label_slices: Optional[int]  # slices of case0026 for the CPU comparison (None: all 131)
    big_slices: int  # the whole-volume CT: case0024 at 512 resampled to this many slices, or a crop of case0026
    big_at_512: bool
    vit: str  # the backbone of the ViT benchmark, random weights
    vit_size: int  # its input size (the backbone's own)
    vit_batch: int
    default_batch: int  # hsam segment's batch on a GPU
    train_base: str  # a new model with LoRA on this backbone
    train_cases: int  # the first BTCV cases at 256: many slices per epoch, so saving after each epoch costs little
    lora_rank: int
    slice_fraction: float
    train_batch: int
    train_seconds: float


FULL = Sizes(device="cuda", label_slices=None, big_slices=150, big_at_512=True, vit="sam_vit_b", vit_size=512,
             vit_batch=16, default_batch=8, train_base="litemedsam", train_cases=12, lora_rank=4, slice_fraction=1.0,
             train_batch=16, train_seconds=120)
QUICK = Sizes(device="cpu", label_slices=3, big_slices=6, big_at_512=False, vit="sam_vit_tiny", vit_size=64,
              vit_batch=4, default_batch=2, train_base="litemedsam_tiny", train_cases=1, lora_rank=2,
              slice_fraction=0.05, train_batch=2, train_seconds=2)


@dataclass(frozen=True)
class Volume:
    path: Path
    size: str  # "512x512x150"
    slices: int


@dataclass
class Row:
    check: str
    value: str
    unit: str
    target: str = ""
    met: str = ""


class CheckFailed(Exception):
    pass


class Runner:
    """Runs ``python -m hsam ...`` as a user would, keeps each command's output in OUT/logs/NAME.txt."""

    def __init__(self, out: Path) -> None:
        self.logs = out / "logs"
        self.logs.mkdir(parents=True, exist_ok=True)
        self.commands: List[str] = []

    def hsam(self, name: str, *args: object) -> float:
        """Run to the end; the wall seconds. CheckFailed (with the last lines of stderr) on a non-zero exit."""
        command = [sys.executable, "-m", "hsam", *map(str, args)]
        self.commands.append("hsam " + " ".join(map(str, args)))
        print(f"+ hsam {' '.join(map(str, args))}", file=sys.stderr, flush=True)
        start = time.perf_counter()
        result = subprocess.run(command, capture_output=True, text=True)
        seconds = time.perf_counter() - start
        (self.logs / f"{name}.txt").write_text(f"$ {' '.join(command)}\n\n{result.stdout}\n{result.stderr}")
        if result.returncode != 0:
            tail = " / ".join(result.stderr.strip().splitlines()[-3:])
            raise CheckFailed(f"exit {result.returncode}: {tail} (logs/{name}.txt)")
        return seconds

    def stdout_of(self, name: str) -> str:
        return (self.logs / f"{name}.txt").read_text()


def prepare_volumes(data: Path, out: Path, sizes: Sizes) -> Tuple[Path, Volume]:
    """The CT for the comparison with the CPU and the whole-volume CT (written to OUT)."""
    import SimpleITK as sitk
    from scipy import ndimage

    source = data / "btcv_synapse" / "256" / "case0026_ct.nii.gz"
    big_source = data / "btcv_synapse" / "512" / "case0024_ct.nii.gz"
    for path in (source, big_source):
        if not path.is_file():
            raise SystemExit(f"check.py: {path} not found: put the shared data beside the checkout "
                             f"({DEFAULT_DATA}) or give --data DIR")
    ct = sitk.ReadImage(str(source))
    if sizes.label_slices is None:
        label_ct = source
    else:
        middle = ct.GetSize()[2] // 2
        label_ct = out / "label_ct.nii.gz"
        sitk.WriteImage(ct[:, :, middle:middle + sizes.label_slices], str(label_ct))
    if sizes.big_at_512:
        # BTCV has no 150-slice CT at 512: case0024 (512x512x124) resampled along z.
        image = sitk.ReadImage(str(big_source))
        voxels = sitk.GetArrayFromImage(image).astype(np.float32)
        stretched = ndimage.zoom(voxels, (sizes.big_slices / voxels.shape[0], 1, 1), order=1)
        big = sitk.GetImageFromArray(np.rint(stretched).astype(np.int16))
        big.SetSpacing(image.GetSpacing()[:2] + (image.GetSpacing()[2] * voxels.shape[0] / sizes.big_slices,))
        big.SetOrigin(image.GetOrigin())
        big.SetDirection(image.GetDirection())
    else:
        middle = ct.GetSize()[2] // 2
        big = ct[:, :, middle:middle + sizes.big_slices]
    size = "x".join(map(str, big.GetSize()))
    sitk.WriteImage(big, str(out / f"ct_{size}.nii.gz"))
    return label_ct, Volume(out / f"ct_{size}.nii.gz", size, big.GetSize()[2])


def label_rows(run: Runner, out: Path, ct: Path, model: str, sizes: Sizes) -> List[Row]:
    """The model on the device (its automatic precision, then fp32) against the CPU, voxel by voxel."""
    import SimpleITK as sitk

    run.hsam("labels_cpu", "segment", ct, "-o", out / "labels_cpu.nii.gz", "--model", model, "--device", "cpu",
             "--precision", "fp32")
    reference = sitk.GetArrayFromImage(sitk.ReadImage(str(out / "labels_cpu.nii.gz")))
    rows = []
    for precision in ("auto", "fp32"):
        path = out / f"labels_{sizes.device}_{precision}.nii.gz"
        run.hsam(f"labels_{sizes.device}_{precision}", "segment", ct, "-o", path, "--model", model, "--device",
                 sizes.device, "--precision", precision)
        labels = sitk.GetArrayFromImage(sitk.ReadImage(str(path)))
        organ = (labels > 0) | (reference > 0)
        same = 100 * float(np.mean(labels == reference))
        same_organ = 100 * float(np.mean(labels[organ] == reference[organ])) if organ.any() else 100.0
        name = f"labels {sizes.device} ({precision} precision) = cpu, {ct.name} {reference.shape[0]} slices"
        rows.append(Row(f"{name}: all voxels", f"{same:.3f}", "%", ">= 99.9", _met(same >= 99.9, sizes)))
        rows.append(Row(f"{name}: organ voxels", f"{same_organ:.3f}", "% of voxels an organ in either"))
    return rows


def benchmark_table(text: str) -> List[Dict[str, str]]:
    """The rows of ``hsam benchmark``'s Markdown table, by column name (robust to columns added later)."""
    lines = [line for line in text.splitlines() if line.startswith("|")]
    header = [cell.strip() for cell in lines[0].strip("|").split("|")]
    return [dict(zip(header, (cell.strip() for cell in line.strip("|").split("|")))) for line in lines[2:]]


def benchmark_rows(run: Runner, name: str, label: str, ct: Volume, batch: int, sizes: Sizes, model: List[str],
                   target_seconds: Optional[float] = None) -> List[Row]:
    run.hsam(name, "benchmark", ct.path, *model, "--batch-size", batch, "--precision", "bf16", "--device",
             sizes.device)
    rows = benchmark_table(run.stdout_of(name))
    naive = next(r for r in rows if r["variant"].startswith("naive"))
    ours = next(r for r in rows if r["variant"].startswith("ours") and "bf16" in r["variant"])
    speedup = float(ours["speed-up"].rstrip("x"))
    slices_per_s = float(ours["slices/s"])
    gpu_mb = ours["peak GPU MB"]
    memory = Row(f"{label}: peak GPU memory", gpu_mb, "MB") if gpu_mb != "-" else \
        Row(f"{label}: peak memory (no GPU: resident)", ours["peak RSS MB"], "MB")
    result = [Row(f"{label}: batched bf16, batch {batch}", f"{slices_per_s:.1f}", "slices/s"),
              Row(f"{label}: naive loop (1 slice, fp32)", naive["slices/s"], "slices/s"),
              Row(f"{label}: speed-up over the naive loop", f"{speedup:.2f}", "x", ">= 5", _met(speedup >= 5, sizes)),
              Row(f"{label}: share of the bf16 matmul peak", ours["% of peak"].rstrip("%"),
                  f"% of {float(ours['matmul peak']) / 1000:.1f} TFLOP/s (a matmul of up to 2048^3, same run)"),
              memory]
    if target_seconds is not None:
        seconds = ct.slices / slices_per_s
        result.append(Row(f"{label}: model time for the whole {ct.size} CT", f"{seconds:.2f}", "s",
                          f"<= {target_seconds} (H100-class)", _met(seconds <= target_seconds, sizes)))
    return result


def segment_rows(run: Runner, out: Path, ct: Volume, model: str, sizes: Sizes) -> List[Row]:
    seconds = run.hsam("segment_whole", "segment", ct.path, "-o", out / "whole.seg.nrrd", "--model", model,
                       "--device", sizes.device)
    return [Row(f"hsam segment of the {ct.size} CT, whole command (start to file written)", f"{seconds:.2f}", "s")]


def training_rows(out: Path, data: Path, sizes: Sizes, run: Runner) -> List[Row]:
    """``hsam train`` with LoRA until ``train_seconds`` after its first step, then stopped by the stop file; the
    throughput between the first and the last step (start-up and data loading left out)."""
    images = sorted((data / "btcv_synapse" / "256").glob("case*_ct.nii.gz"))[:sizes.train_cases]
    cases = [arg for image in images for arg in ("--case", image, image.with_name(image.name.replace("_ct", "_label")))]
    stop_file = out / "train_stop"
    stop_file.unlink(missing_ok=True)
    shutil.rmtree(out / "lora_model", ignore_errors=True)  # this script's own output of an earlier run
    args = ["train", *cases, "--label-map", LABEL_MAP, "--out", out / "lora_model", "--base", sizes.train_base,
            "--lora-rank", sizes.lora_rank, "--slice-fraction", sizes.slice_fraction, "--batch-size",
            sizes.train_batch, "--precision", "bf16", "--epochs", 1000, "--no-validation", "--device", sizes.device,
            "--progress", "jsonl"]
    run.commands.append("hsam " + " ".join(map(str, args)) + f"  (stopped {sizes.train_seconds:g} s after its "
                        "first step)")
    print(f"+ hsam {' '.join(map(str, args))}", file=sys.stderr, flush=True)
    env = dict(os.environ, HSAM_STOP_FILE=str(stop_file))
    steps = []  # (seconds, step)
    with open(run.logs / "train.txt", "w") as log:
        process = subprocess.Popen([sys.executable, "-m", "hsam", *map(str, args)], stdout=subprocess.PIPE,
                                   stderr=log, text=True, env=env)
        for line in process.stdout:
            log.write(line)
            event = json.loads(line) if line.startswith("{") else {}
            if event.get("event") == "step":
                steps.append((time.perf_counter(), event["step"]))
                if steps[-1][0] - steps[0][0] >= sizes.train_seconds:
                    stop_file.touch()
        code = process.wait()
    if code not in (0, 3) or len(steps) < 2:
        raise CheckFailed(f"exit {code} after {len(steps)} steps (logs/train.txt)")
    (start, first), (end, last) = steps[0], steps[-1]
    rate = (last - first) * sizes.train_batch / (end - start)
    return [Row(f"LoRA training, {sizes.train_base} rank {sizes.lora_rank}, batch {sizes.train_batch}, bf16",
                f"{rate:.1f}", f"slices/s over {last - first} steps in {end - start:.0f} s, {len(images)} BTCV cases")]


def _met(ok: bool, sizes: Sizes) -> str:
    return ("yes" if ok else "NO") if sizes.device == "cuda" else "-"  # the targets are for a GPU


def machine(sizes: Sizes) -> str:
    import torch

    if sizes.device == "cuda":
        gpu = f"{torch.cuda.get_device_name(0)}, CUDA {torch.version.cuda}, {torch.cuda.device_count()} GPU(s)"
    else:
        gpu = "no GPU (--quick: CPU, tiny sizes; the targets do not apply)"
    cpu = platform.processor() or platform.machine()
    return f"{gpu}; torch {torch.__version__}; {os.cpu_count()} CPU cores, {cpu}; Python {platform.python_version()}"


def table(rows: List[Row]) -> str:
    lines = ["| check | value | unit | target | met |", "|---|---|---|---|---|"]
    lines += [f"| {r.check} | {r.value} | {r.unit} | {r.target} | {r.met} |" for r in rows]
    return "\n".join(lines)


def main(argv: Optional[List[str]] = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("out", type=Path, help="folder for gpu_check.md, the logs and the volumes it writes")
    parser.add_argument("--quick", action="store_true", help="CPU, tiny sizes: every step in about a minute")
    parser.add_argument("--data", type=Path, default=DEFAULT_DATA, help=f"the shared data (default {DEFAULT_DATA})")
    parser.add_argument("--model", default=DEFAULT_MODEL, help=f"the model of the label, model benchmark and whole "
                        f"volume rows (default {DEFAULT_MODEL}, the bundled default model)")
    parser.add_argument("--train-seconds", type=float, help="how long to train (default 120; --quick: 2)")
    args = parser.parse_args(argv)
    sizes = QUICK if args.quick else FULL
    if args.train_seconds:
        sizes = dataclasses.replace(sizes, train_seconds=args.train_seconds)
    if not args.quick:
        import torch

        if not torch.cuda.is_available():
            raise SystemExit(f"check.py: no CUDA GPU is visible to torch {torch.__version__} (a CPU-only build, or "
                             "no driver): run it on a CUDA machine, or add --quick for the CPU form")
    start = time.perf_counter()
    out = args.out.resolve()
    out.mkdir(parents=True, exist_ok=True)
    run = Runner(out)
    label_ct, big_ct = prepare_volumes(args.data, out, sizes)
    parts = [
        ("labels against the CPU", lambda: label_rows(run, out, label_ct, args.model, sizes)),
        (f"{sizes.vit} benchmark", lambda: benchmark_rows(
            run, "benchmark_vit", f"{sizes.vit} (random weights) at {sizes.vit_size}", big_ct,
            sizes.vit_batch, sizes, ["--backbone", sizes.vit, "--random"])),
        ("model benchmark", lambda: benchmark_rows(
            run, "benchmark_model", f"{Path(args.model).name} on the {big_ct.size} CT", big_ct, sizes.default_batch,
            sizes, ["--model", args.model], target_seconds=1.5)),
        ("whole volume", lambda: segment_rows(run, out, big_ct, args.model, sizes)),
        ("LoRA training", lambda: training_rows(out, args.data, sizes, run)),
    ]
    rows: List[Row] = []
    failed = False
    for name, part in parts:
        try:
            rows += part()
        except CheckFailed as exc:
            failed = True
            rows.append(Row(f"{name}: FAILED", "-", str(exc).replace("|", "/")))
    checks = time.perf_counter() - start
    rows.append(Row("the checks, wall time", f"{checks:.0f}", "s"))
    setup = os.environ.get("GPU_CHECK_SETUP_SECONDS")  # set by run.sh
    if setup is not None:
        total = float(setup) + checks
        rows += [Row("run.sh setup (venv, torch, hsam; 0 when installed)", setup, "s"),
                 Row("run.sh in all", f"{total:.0f}", "s", "<= 480 from a fresh checkout", _met(total <= 480, sizes))]
    text = table(rows)
    report = (f"# GPU check\n\n{machine(sizes)}\n\n{text}\n\nCommands (run from {REPO}, python -m hsam):\n\n" +
              "\n".join(f"    {command}" for command in run.commands) + "\n")
    (out / "gpu_check.md").write_text(report)
    print(f"\n{machine(sizes)}\n\n{text}\n\nwritten to {out / 'gpu_check.md'}")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
