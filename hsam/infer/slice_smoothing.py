"""Neighbouring slices agree: each slice's class probabilities mixed with those of the slices above and below.

The model sees one axial slice at a time, so an organ's edge can flicker from slice to slice. Mixing a slice's
fused probabilities with its neighbours' (weights w, 1 - 2w, w; the volume's first and last slices count
themselves as their missing neighbour) before the argmax makes the labels consistent along the slice axis at the
cost of three slices' probabilities in memory.

Batches arrive in slice order; the last slice of each batch waits for the first slice of the next one.
"""
from __future__ import annotations

from typing import Callable, Optional

import torch

# write(first slice index, probabilities (n, classes, j, i)) turns smoothed probabilities into labels.
Write = Callable[[int, torch.Tensor], None]


class SliceSmoother:
    def __init__(self, weight: float, write: Write) -> None:
        if not 0.0 <= weight < 0.5:
            raise ValueError(f"slice smoothing weight must be in [0, 0.5), got {weight}")
        self.weight = weight
        self.write = write
        self._held: Optional[torch.Tensor] = None  # the last slice seen, (1, C, j, i), not yet written
        self._held_index = 0
        self._before: Optional[torch.Tensor] = None  # the slice before the held one, unsmoothed

    def add(self, start: int, probs: torch.Tensor) -> None:
        """probs (n, C, j, i) of slices start .. start + n - 1, following the slices added before."""
        if self.weight == 0.0:
            self.write(start, probs)
            return
        if self._held is not None:
            probs, start = torch.cat([self._held, probs]), self._held_index
            before = self._before
        else:
            before = probs[:1]  # the volume's first slice is its own upper neighbour
        if len(probs) > 1:
            previous = torch.cat([before, probs[:-2]])
            self.write(start, self._mix(previous, probs[:-1], probs[1:]))
            before = probs[-2:-1]
        self._held, self._held_index, self._before = probs[-1:], start + len(probs) - 1, before

    def finish(self) -> None:
        """Writes the volume's last slice, its own lower neighbour."""
        if self._held is not None:
            self.write(self._held_index, self._mix(self._before, self._held, self._held))
            self._held = self._before = None

    def _mix(self, previous: torch.Tensor, current: torch.Tensor, following: torch.Tensor) -> torch.Tensor:
        w = self.weight
        return current * (1.0 - 2.0 * w) + (previous + following) * w
