"""``hsam benchmark --end-to-end``: the whole ``hsam segment`` run, the previous pipeline and today's default, on
one volume, side by side. When the model card names inference options (box prompts, slice smoothing) the default is
also run with them off: that run shows that the speed-ups keep the previous labels, the default as a user runs it
what the options cost and change.

Each run is its own process, started the way a user starts it, and timed from start to exit (Python, imports,
model loading, reading, orientation, normalisation, encoding, decoding, post-processing, writing); its peak
resident memory is the kernel's count for that process (``wait4``), so one run's memory never shows in another's.
The volume file is read once before the runs, so both find it in the page cache.

"The model" in the memory budget is everything a run holds that does not grow with the volume (Python, torch, the
weights, one slice's activations): the peak of the default run on a 4-slice cut of the same volume. The budget
for the whole volume is that plus two copies of the input volume in its own voxel type.
"""
from __future__ import annotations

import os
import subprocess
import sys
import time
from pathlib import Path
from typing import Callable, Dict, List, Optional, Sequence, Tuple

import numpy as np
import SimpleITK as sitk

THIN_SLICES = 16  # the forward pass reaches its steady memory within about 10 slices


def cut_volume(path: Path, out: Path, slices: Optional[int] = None, depth: Optional[int] = None) -> Path:
    """``slices`` axial slices around the middle of ``path``, or the volume made ``depth`` slices deep (cut
    around the middle, or extended by mirrored copies of itself when it is shorter), written to ``out``
    (compressed like the input); ``path`` itself when neither is given."""
    if not slices and not depth:
        return path
    image = sitk.ReadImage(str(path))
    size = image.GetSize()[2]
    want = slices or depth
    if want < size:
        start = (size - want) // 2
        image = image[:, :, start:start + want]
    elif want > size:
        if slices:
            raise ValueError(f"--slices {slices}: {path} has only {size} slices; use --depth to extend it")
        array = sitk.GetArrayFromImage(image)
        order = np.concatenate([np.arange(size), np.arange(size)[::-1]])  # forth and back: no jump in anatomy
        extended = sitk.GetImageFromArray(array[np.resize(order, want)])
        extended.SetSpacing(image.GetSpacing())
        extended.SetOrigin(image.GetOrigin())
        extended.SetDirection(image.GetDirection())
        image = extended
    sitk.WriteImage(image, str(out), True)
    return out


def run_process(command: Sequence[str]) -> Tuple[float, float]:
    """(seconds from start to exit, peak resident MB) of ``command``; its output goes to ours."""
    start = time.perf_counter()
    process = subprocess.Popen(list(command))
    if hasattr(os, "wait4"):
        _, status, usage = os.wait4(process.pid, 0)
        process.returncode = os.waitstatus_to_exitcode(status)
        peak = usage.ru_maxrss / 1024  # KiB on Linux
    else:  # Windows: no per-process peak
        process.wait()
        peak = float("nan")
    seconds = time.perf_counter() - start
    if process.returncode != 0:
        raise RuntimeError(f"{' '.join(command)} exited with {process.returncode}")
    return seconds, peak


def previous_command(volume: Path, out: Path, model: str) -> List[str]:
    return [sys.executable, "-m", "hsam.infer.previous_pipeline", str(volume), str(out), "--model", model]


def default_command(volume: Path, out: Path, model: str) -> List[str]:
    return [sys.executable, "-m", "hsam", "segment", str(volume), "-o", str(out), "--model", model,
            "--device", "cpu"]


def options_off_command(volume: Path, out: Path, model: str) -> List[str]:
    return default_command(volume, out, model) + ["--slice-smoothing", "0", "--box-prompts", "0"]


def card_inference(model: str) -> Dict[str, float]:
    """The inference options the model card names (empty when none)."""
    from ..models.card import read_card  # here, not above: model_dir imports torch, which the runs load themselves
    from ..models.model_dir import resolve_model_dir

    return {k: v for k, v in (read_card(resolve_model_dir(model)).get("inference") or {}).items() if v}


def same_labels(a: Path, b: Path) -> float:
    return float(np.mean(sitk.GetArrayFromImage(sitk.ReadImage(str(a))) ==
                         sitk.GetArrayFromImage(sitk.ReadImage(str(b)))))


def run_end_to_end(volume: Path, model: str, work: Path, slices: Optional[int] = None, depth: Optional[int] = None,
                   repeats: int = 1, log: Callable[[str], None] = print) -> Dict:
    """Both pipelines on ``volume`` (cut or extended by ``slices`` / ``depth``), each ``repeats`` times,
    alternating; the median time and the highest peak memory of each. Returns the rows and the input's facts."""
    source = cut_volume(Path(volume), work / f"input{''.join(Path(volume).suffixes)}", slices, depth)
    image_info = sitk.ImageFileReader()
    image_info.SetFileName(str(source))
    image_info.ReadImageInformation()
    size = image_info.GetSize()
    voxel_bytes = sitk.GetArrayViewFromImage(sitk.Image([1, 1, 1], image_info.GetPixelID())).itemsize
    input_mb = int(np.prod(size)) * voxel_bytes / 2 ** 20
    Path(source).read_bytes()  # into the page cache before either run
    variants = [("previous (fp32, before the speed-ups)", previous_command, work / "previous.seg.nrrd")]
    options = card_inference(model)
    if options:
        variants.append(("default, inference options off", options_off_command, work / "options-off.seg.nrrd"))
    variants.append(("default" + "".join(f", {k} {v:g}" for k, v in options.items()), default_command,
                     work / "default.seg.nrrd"))
    times: Dict[str, List[float]] = {name: [] for name, _, _ in variants}
    peaks: Dict[str, float] = {name: 0.0 for name, _, _ in variants}
    for repeat in range(repeats):
        for name, command, out in variants:
            log(f"run {repeat + 1}/{repeats}: {name}")
            seconds, peak = run_process(command(source, out, model))
            times[name].append(seconds)
            peaks[name] = max(peaks[name], peak)
    thin = cut_volume(Path(source), work / f"thin{''.join(Path(volume).suffixes)}", slices=min(THIN_SLICES, size[2]))
    log(f"the fixed cost: the default on {THIN_SLICES} slices")
    _, model_mb = run_process(default_command(thin, work / "thin.seg.nrrd", model))
    base = float(np.median(times[variants[0][0]]))
    rows = []
    for name, _, out in variants:
        seconds = float(np.median(times[name]))
        rows.append({"variant": name, "seconds": seconds, "all_seconds": times[name], "speedup": base / seconds,
                     "peak_rss_mb": peaks[name], "same_labels": same_labels(variants[0][2], out)})
    return {"rows": rows, "size": size, "input_mb": input_mb, "model_mb": model_mb,
            "budget_mb": model_mb + 2 * input_mb, "source": str(source)}


def format_end_to_end(result: Dict) -> str:
    lines = ["| run | seconds | speed-up | peak RSS MB | labels equal to the previous fp32 |",
             "|---|---|---|---|---|"]
    for row in result["rows"]:
        runs = "" if len(row["all_seconds"]) == 1 else " (" + ", ".join(f"{s:.1f}" for s in row["all_seconds"]) + ")"
        lines.append(f"| {row['variant']} | {row['seconds']:.1f}{runs} | {row['speedup']:.2f}x | "
                     f"{row['peak_rss_mb']:.0f} | {100 * row['same_labels']:.3f}% |")
    default = result["rows"][-1]
    within = "within" if default["peak_rss_mb"] <= result["budget_mb"] else "OVER"
    lines.append("")
    lines.append(f"memory budget: the model ({result['model_mb']:.0f} MB, peak of the default on {THIN_SLICES} "
                 f"slices) + 2 x the input volume ({result['input_mb']:.0f} MB) = {result['budget_mb']:.0f} MB; "
                 f"the default peaked at {default['peak_rss_mb']:.0f} MB: {within} budget")
    return "\n".join(lines)
