"""A second opinion per organ from the backbone's own box-prompted decoder (``--box-prompts W``).

For every slice and every organ that H-SAM's argmax shows on it, the box around that organ's pieces (leaving out
specks under ``MIN_PIXELS`` pixels or ``PIECE_SHARE`` of its largest piece), widened by ``MARGIN`` pixels (MedSAM
learned from boxes a little larger than the organ), prompts LiteMedSAM's frozen decoder on the slice's image
embedding. Its answer q (a probability inside the box, 0 outside) is mixed into H-SAM's probabilities p with
weight W, then scaled to sum to 1 per pixel (for the uncertainty map):

    organ c:     (1 - W) p_c + W q_c
    background:  (1 - W) p_0 + W (1 - max_c q_c)

W = 1 is the prompt decoder alone (within H-SAM's boxes); slices without an organ keep H-SAM's probabilities. The
decoder runs at the model input size, before the probabilities are resized to the slice grid.
"""
from __future__ import annotations

from typing import List, Tuple

import numpy as np
import torch
from scipy import ndimage

from ..network.box_decoder import BoxPromptDecoder

MARGIN = 3  # pixels of the 256 x 256 input added on each side of an organ's box
MIN_PIXELS = 10  # smaller specks are not worth a box
PIECE_SHARE = 0.1  # nor are pieces under this share of the organ's largest piece on the slice


def organ_boxes(labels: np.ndarray, classes: int) -> Tuple[List[int], torch.Tensor]:
    """(organ values, (N, 4) boxes x0, y0, x1, y1 widened by MARGIN) of one slice's label map (H, W): the box
    around an organ's pieces but its specks, so that an organ in several pieces (a pancreas) is prompted
    whole and a stray speck far from the organ does not widen its box."""
    height, width = labels.shape
    organs, boxes = [], []
    for c in range(1, classes):
        pieces, n = ndimage.label(labels == c)
        if not n:
            continue
        sizes = np.bincount(pieces.ravel(), minlength=n + 1)
        least = max(MIN_PIXELS, PIECE_SHARE * sizes[1:].max())
        kept = [box for piece, box in enumerate(ndimage.find_objects(pieces), start=1) if sizes[piece] >= least]
        if not kept:
            continue
        organs.append(c)
        boxes.append([max(0, min(cols.start for _, cols in kept) - MARGIN),
                      max(0, min(rows.start for rows, _ in kept) - MARGIN),
                      min(width - 1, max(cols.stop for _, cols in kept) - 1 + MARGIN),
                      min(height - 1, max(rows.stop for rows, _ in kept) - 1 + MARGIN)])
    return organs, torch.tensor(boxes, dtype=torch.float32).reshape(-1, 4)


class BoxPrompts:
    def __init__(self, decoder: BoxPromptDecoder, weight: float) -> None:
        if not 0.0 < weight <= 1.0:
            raise ValueError(f"box prompt weight must be in (0, 1], got {weight}")
        self.decoder = decoder
        self.weight = weight

    def refine(self, embeddings: torch.Tensor, probs: torch.Tensor) -> torch.Tensor:
        """embeddings (B, D, h, w) and H-SAM's probabilities (B, C, S, S) at the decoder's input size S; the
        probabilities are replaced in place and returned."""
        size = self.decoder.input_size
        if probs.shape[-1] != size or probs.shape[-2] != size:
            raise ValueError(f"box prompts need probabilities at {size} x {size}, got {tuple(probs.shape[-2:])}")
        labels = probs.argmax(1).to(torch.uint8).cpu().numpy()
        out = probs  # mixed in place, slice by slice: the caller's probabilities are a fresh tensor
        for b in range(len(probs)):
            organs, boxes = organ_boxes(labels[b], probs.shape[1])
            if not organs:
                continue
            answer = torch.sigmoid(self.decoder(embeddings[b:b + 1], boxes.to(embeddings.device)).float())
            inside = torch.zeros_like(answer)
            for i, (x0, y0, x1, y1) in enumerate(boxes.long().tolist()):
                inside[i, y0:y1 + 1, x0:x1 + 1] = 1
            answer = answer * inside
            mixed = out[b] * (1 - self.weight)
            mixed[organs] += self.weight * answer
            mixed[0] += self.weight * (1 - answer.max(0).values)
            out[b] = mixed / mixed.sum(0, keepdim=True)  # where boxes overlap the answers add up to more than 1
        return out
