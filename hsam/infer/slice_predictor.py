"""Segment a canonically oriented volume slice batch by slice batch.

Only the canonical input, the uint8 label volume and (optionally) a float uncertainty map are ever held at full
size; each batch is normalised (with the intensity range of the whole volume, as in training), resized to the model
input, predicted, and its fused probabilities (not labels) resized back to the slice grid before the argmax.
"""
from __future__ import annotations

import contextlib
from typing import Any, Callable, Dict, NamedTuple, Optional, Sequence, Tuple

import numpy as np
import torch
import torch.nn.functional as F

from ..io.normalize import intensity_range, scale_to_unit
from ..io.slice_field import Padding, field_padding, slice_field_of
from ..io.slices import slices_to_batch
from ..network.box_decoder import load_litemedsam_box_decoder
from ..network.fused_attention import use_fused_attention
from ..precision import inference_autocast_dtype
from .box_prompts import BoxPrompts
from .device import is_out_of_memory
from .embedding_store import EmbeddingStore, StoredEncoder
from .inference_model import prepare_for_inference
from .slice_smoothing import SliceSmoother
from .threads import match_threads_to_cores


class SliceResult(NamedTuple):
    labels: np.ndarray  # (k, j, i) uint8 class values
    uncertainty: Optional[np.ndarray]  # (k, j, i) float32 entropy of the fused probabilities, or None


def card_option(card: Optional[Dict[str, Any]], name: str, given: Optional[float]) -> float:
    """An inference option as given, else the model card's ``inference`` value, else 0 (off)."""
    if given is not None:
        return float(given)
    return float(((card or {}).get("inference") or {}).get(name, 0.0))


class SlicePredictor:
    """Owns ``model`` from here on: it is moved to ``device`` and rewritten for inference (inference_model.py)."""

    def __init__(self, model, device: torch.device, batch_size: int = 8,
                 log: Optional[Callable[[str], None]] = None, precision: str = "auto",
                 embedding_store: Optional[str] = None, slice_smoothing: Optional[float] = None,
                 box_prompts: Optional[float] = None) -> None:
        # None: as the model card's "inference" says (what the model was validated with), else off.
        self.slice_smoothing = card_option(model.card, "slice_smoothing", slice_smoothing)
        box_prompts = card_option(model.card, "box_prompts", box_prompts)
        if box_prompts and model.backbone.name != "litemedsam":
            raise ValueError(f"box prompts need a model on the LiteMedSAM backbone (its box-prompted decoder); "
                             f"this model is on {model.backbone.name}: pass --box-prompts 0")
        self.box_prompts = BoxPrompts(load_litemedsam_box_decoder().to(device), box_prompts) \
            if box_prompts else None
        self.model = model.to(device).eval()
        self.device = device
        self.amp_dtype = inference_autocast_dtype(device, precision)
        use_fused_attention(self.model.backbone.encoder)
        prepare_for_inference(self.model, device, self.amp_dtype, encoder=embedding_store is None)
        if embedding_store is not None:  # comparing several decoders on one frozen encoder: encode each slice once
            self.model.backbone.encoder = StoredEncoder(self.model.backbone.encoder, EmbeddingStore(embedding_store))
        if device.type == "cpu":
            match_threads_to_cores()
        self.batch_size = max(1, int(batch_size))
        self.log = log or (lambda _: None)
        active = [f"{name} {value:g}" for name, value in (("--slice-smoothing", self.slice_smoothing),
                                                            ("--box-prompts", box_prompts)) if value]
        if active:
            self.log("inference options: " + ", ".join(active))
        self.normalization: Dict[str, Any] = model.card["normalization"]
        self.slice_field = slice_field_of(model.card)

    def _autocast(self):
        if self.amp_dtype is None:
            return contextlib.nullcontext()
        return torch.autocast(self.device.type, dtype=self.amp_dtype)

    def _probabilities(self, chunk: np.ndarray, value_range: Tuple[float, float],
                       padding: Padding = Padding()) -> torch.Tensor:
        """Fused class probabilities of ``chunk``'s slices, (n, C, j, i) on the slice grid, class-last in memory.
        ``padding`` makes the slices' field square in mm (io/slice_field.py); it is cut off the probabilities."""
        scaled = padding.pad(scale_to_unit(chunk, *value_range))
        batch = slices_to_batch(scaled, self.model.img_size).to(self.device)
        if self.device.type == "cpu":
            batch = batch.contiguous(memory_format=torch.channels_last)
        out = self.model.predict_logits(batch)
        fused = out["fused"]
        # Class last (NHWC) on every step: softmax, resize and argmax then run over contiguous memory. The argmax
        # over dim 1 of an NCHW tensor alone took 30-50 ms per 512x512 slice on a CPU, more than the rest together.
        probs = torch.softmax(fused.float().permute(0, 2, 3, 1).contiguous(), dim=-1).permute(0, 3, 1, 2)
        if self.box_prompts is not None:
            probs = self.box_prompts.refine(out["embedding"], probs)
        if probs.shape[-2:] != scaled.shape[-2:]:
            probs = F.interpolate(probs, size=scaled.shape[-2:], mode="bilinear", align_corners=False)
        return padding.crop(probs)

    def predict(self, volume: np.ndarray, uncertainty: bool = False,
                on_progress: Optional[Callable[[int, int], None]] = None,
                check_stop: Optional[Callable[[], None]] = None,
                spacing: Sequence[float] = (1.0, 1.0)) -> SliceResult:
        """volume: (k, j, i) raw intensities in canonical orientation; spacing: its pixel size (i, j) in mm."""
        depth = volume.shape[0]
        padding = field_padding(volume.shape[1:], spacing, self.slice_field)
        value_range = intensity_range(volume, self.normalization)
        labels = np.zeros(volume.shape, dtype=np.uint8)
        entropy_map = np.zeros(volume.shape, dtype=np.float32) if uncertainty else None

        def write(first: int, probs: torch.Tensor) -> None:
            last = first + len(probs)
            torch.from_numpy(labels[first:last]).copy_(probs.argmax(1))
            if entropy_map is not None:
                torch.from_numpy(entropy_map[first:last]).copy_(-(probs * probs.clamp_min(1e-8).log()).sum(1))

        smoother = SliceSmoother(self.slice_smoothing, write)
        start = 0
        # One autocast region for the whole volume: the casts it caches (of float32 parameters) are made once.
        with torch.inference_mode(), self._autocast():
            while start < depth:
                if check_stop:
                    check_stop()
                end = min(depth, start + self.batch_size)
                try:
                    probs = self._probabilities(np.asarray(volume[start:end], dtype=np.float32), value_range,
                                               padding)
                except RuntimeError as exc:
                    if not is_out_of_memory(exc):
                        raise
                    if self.batch_size == 1:
                        raise ValueError(f"out of {self.device.type.upper()} memory even with one slice per batch; "
                                         "close other programs using the GPU or use --device cpu") from None
                    self.batch_size = max(1, self.batch_size // 2)
                    if self.device.type == "cuda":
                        torch.cuda.empty_cache()
                    self.log(f"out of GPU memory: continuing with batch size {self.batch_size}")
                    continue
                smoother.add(start, probs)
                start = end
                if on_progress:
                    on_progress(start, depth)
            smoother.finish()
        return SliceResult(labels, entropy_map)
