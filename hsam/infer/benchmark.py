"""Side-by-side inference benchmark on one volume and one set of weights.

- naive: what the released test code does per slice: cubic zoom to the model input, one slice per forward,
  fp32, LoRA not merged, autograd bookkeeping on (``torch.no_grad`` only).
- ours: the ``hsam segment`` path: LoRA merged, batched slices, ``torch.inference_mode``; fp32 or bf16; the model
  card's inference options (box prompts, slice smoothing) off, as the naive loop has none.
Reported: slices/s, the speed-up, peak resident memory (and GPU memory), achieved GFLOP/s against a matmul peak
measured in the same run, and how many voxels get the same label as the naive loop.
"""
from __future__ import annotations

import contextlib
import copy
import threading
import time
from typing import Callable, Dict, List, Optional

import numpy as np
import torch
import torch.nn.functional as F
from scipy import ndimage
from torch.utils.flop_counter import FlopCounterMode

from ..io.normalize import intensity_range, scale_to_unit


class PeakMemory:
    """Samples this process's resident memory (Linux /proc) while a block runs."""

    def __init__(self, interval: float = 0.02) -> None:
        self.interval = interval
        self.peak_mb = 0.0
        self._stop = threading.Event()

    @staticmethod
    def rss_mb() -> float:
        try:
            with open("/proc/self/status") as f:
                for line in f:
                    if line.startswith("VmRSS:"):
                        return int(line.split()[1]) / 1024
        except OSError:
            pass
        return float("nan")

    def _sample(self) -> None:
        while not self._stop.is_set():
            self.peak_mb = max(self.peak_mb, self.rss_mb())
            self._stop.wait(self.interval)

    def __enter__(self) -> "PeakMemory":
        self.peak_mb = self.rss_mb()
        self._thread = threading.Thread(target=self._sample, daemon=True)
        self._thread.start()
        return self

    def __exit__(self, *exc) -> None:
        self._stop.set()
        self._thread.join()


def matmul_peak_gflops(device: torch.device, dtype: torch.dtype, n: int = 2048, repeats: int = 5,
                       budget_s: float = 3.0) -> float:
    """GFLOP/s of an n x n matmul in ``dtype``, the largest power of two up to n whose ``repeats`` products fit in
    about ``budget_s``: where a CPU emulates a dtype (bf16 without AVX512-BF16/AMX) one 2048^3 product takes
    minutes, so a smaller one measures the same rate in seconds."""
    size = min(n, 256)
    while True:
        a = torch.randn(size, size, device=device, dtype=dtype)
        b = torch.randn(size, size, device=device, dtype=dtype)
        a @ b  # warm-up
        _sync(device)
        start = time.perf_counter()
        a @ b
        _sync(device)
        one = time.perf_counter() - start
        if size * 2 > n or one * 8 * repeats > budget_s:  # twice the size: 8 times the work
            break
        size *= 2
    start = time.perf_counter()
    for _ in range(repeats):
        a @ b
    _sync(device)
    return 2 * size ** 3 * repeats / (time.perf_counter() - start) / 1e9


def _sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def _autocast(device: torch.device, dtype: torch.dtype):
    if dtype == torch.float32:
        return contextlib.nullcontext()
    return torch.autocast(device.type, dtype=dtype)


def flops_per_slice(model, size: int, device: torch.device) -> float:
    counter = FlopCounterMode(display=False)
    with counter:  # with autograd on: FlopCounterMode's module tracker needs grad functions
        model(torch.zeros(1, 3, size, size, device=device))
    return counter.get_total_flops()


def run_naive(model, volume: np.ndarray, normalization: Dict, device: torch.device,
              on_progress: Optional[Callable[[int, int], None]] = None) -> np.ndarray:
    size = model.img_size
    labels = np.zeros(volume.shape, np.uint8)
    value_range = intensity_range(volume, normalization)  # the whole scan's, as the batched path uses
    with torch.no_grad():
        for k in range(volume.shape[0]):
            image = scale_to_unit(np.asarray(volume[k], np.float32), *value_range)
            if image.shape != (size, size):
                image = ndimage.zoom(image, (size / image.shape[0], size / image.shape[1]), order=3)
            x = torch.from_numpy(np.repeat(image[None, None], 3, axis=1)).to(device)
            fused = model(x)["fused"]
            pred = fused.argmax(1, keepdim=True).float()
            if pred.shape[-2:] != volume.shape[1:]:
                pred = F.interpolate(pred, size=volume.shape[1:], mode="nearest")
            labels[k] = pred[0, 0].to(torch.uint8).cpu().numpy()
            if on_progress is not None:
                on_progress(k + 1, volume.shape[0])
    return labels


def run_benchmark(model, volume: np.ndarray, device: torch.device, batch_size: int, precisions: List[str],
                  on_progress: Optional[Callable[[str, int, int], None]] = None,
                  gflop_per_slice: Optional[float] = None) -> List[Dict]:
    """model: unmerged (as loaded for training); volume: (k, j, i) raw intensities in canonical orientation.

    on_progress(variant, slices done, slices): called after every slice or batch of each variant."""
    from ..allocator import keep_freed_memory
    from .slice_predictor import SlicePredictor

    normalization = model.card["normalization"]
    model = model.to(device).eval()
    slices = volume.shape[0]
    gflop = gflop_per_slice or flops_per_slice(model, model.img_size, device) / 1e9
    rows = []
    peaks: Dict[torch.dtype, float] = {}  # one measurement per dtype: the naive loop and fp32 share it

    def progress_of(name: str) -> Optional[Callable[[int, int], None]]:
        return None if on_progress is None else lambda done, total: on_progress(name, done, total)

    def measure(name: str, dtype: torch.dtype, fn) -> np.ndarray:
        if dtype not in peaks:
            peaks[dtype] = matmul_peak_gflops(device, dtype)
        peak = peaks[dtype]
        if device.type == "cuda":
            torch.cuda.reset_peak_memory_stats(device)
        _sync(device)
        with PeakMemory() as mem:
            start = time.perf_counter()
            labels = fn()
            _sync(device)
            seconds = time.perf_counter() - start
        rows.append({"variant": name, "seconds": seconds, "slices_per_s": slices / seconds,
                     "gflops": gflop * slices / seconds, "matmul_peak_gflops": peak,
                     "peak_rss_mb": mem.peak_mb,
                     "peak_gpu_mb": torch.cuda.max_memory_allocated(device) / 2 ** 20 if device.type == "cuda"
                     else None})
        return labels

    naive_name = "naive (1 slice, fp32, LoRA unmerged)"
    naive = measure(naive_name, torch.float32,
                    lambda: run_naive(model, volume, normalization, device, progress_of(naive_name)))
    merged = copy.deepcopy(model)
    merged.merge_lora()
    keep_freed_memory()  # what the hsam commands do; the naive loop above ran with the allocator's defaults
    for precision in precisions:
        dtype = {"fp32": torch.float32, "bf16": torch.bfloat16}[precision]
        # A predictor rewrites its model for its precision (weights stored in bf16 for bf16): a copy each. The
        # card's inference options stay off: the naive loop has none, and this compares the forward path.
        predictor = SlicePredictor(copy.deepcopy(merged), device, batch_size, precision=precision,
                                   slice_smoothing=0.0, box_prompts=0.0)
        name = f"ours (batch {batch_size}, {precision}, merged)"
        labels = measure(name, dtype, lambda: predictor.predict(volume, on_progress=progress_of(name)).labels)
        rows[-1]["same_labels_as_naive"] = float(np.mean(labels == naive))
    base = rows[0]["seconds"]
    for row in rows:
        row["speedup"] = base / row["seconds"]
        row["peak_fraction"] = row["gflops"] / row["matmul_peak_gflops"]
    return rows


def format_rows(rows: List[Dict], gflop_per_slice: Optional[float] = None) -> str:
    lines = ["| variant | slices/s | speed-up | GFLOP/s | matmul peak | % of peak | peak RSS MB | peak GPU MB "
             "| same labels as naive |", "|---|---|---|---|---|---|---|---|---|"]
    for r in rows:
        gpu = f"{r['peak_gpu_mb']:.0f}" if r["peak_gpu_mb"] is not None else "-"
        same = f"{100 * r['same_labels_as_naive']:.3f}%" if "same_labels_as_naive" in r else "-"
        lines.append(f"| {r['variant']} | {r['slices_per_s']:.2f} | {r['speedup']:.2f}x | {r['gflops']:.0f} | "
                     f"{r['matmul_peak_gflops']:.0f} | {100 * r['peak_fraction']:.0f}% | {r['peak_rss_mb']:.0f} | "
                     f"{gpu} | {same} |")
    return "\n".join(lines)
