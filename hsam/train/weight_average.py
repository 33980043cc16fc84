"""An exponential moving average of the trainable weights (``hsam train --ema DECAY``, on by default).

With a few dozen training slices the decoder weights swing from one epoch to the next (validation Dice moves by
several points between neighbouring epochs). Validating and saving an average of the recent weights instead of the
last ones smooths that out. The average is kept in float32 beside the model; the optimiser never sees it.
"""
from __future__ import annotations

import contextlib
from typing import Dict, Iterator

import torch
from torch import nn


class WeightAverage:
    def __init__(self, model: nn.Module, decay: float) -> None:
        if not 0.0 < decay < 1.0:
            raise ValueError(f"the weight-average decay must be in (0, 1), got {decay}")
        self.decay = decay
        self.params: Dict[str, nn.Parameter] = {n: p for n, p in model.named_parameters() if p.requires_grad}
        self.average: Dict[str, torch.Tensor] = {n: p.detach().float().clone() for n, p in self.params.items()}

    def effective_decay(self, step: int) -> float:
        # Early on the average would mostly remember the random initial decoder; ramp the decay up with the step
        # count so that the average follows the weights closely at first.
        return min(self.decay, (1.0 + step) / (10.0 + step))

    @torch.no_grad()
    def update(self, step: int) -> None:
        d = self.effective_decay(step)
        for name, p in self.params.items():
            self.average[name].mul_(d).add_(p.detach().float(), alpha=1.0 - d)

    @contextlib.contextmanager
    def applied(self) -> Iterator[None]:
        """The model holds the averaged weights inside the block and its own weights again after it."""
        own = {n: p.detach().clone() for n, p in self.params.items()}
        try:
            with torch.no_grad():
                for name, p in self.params.items():
                    p.copy_(self.average[name])
            yield
        finally:
            with torch.no_grad():
                for name, p in self.params.items():
                    p.copy_(own[name])

    def state_dict(self) -> Dict[str, torch.Tensor]:
        return {n: t.clone() for n, t in self.average.items()}

    def load_state_dict(self, state: Dict[str, torch.Tensor]) -> None:
        if set(state) != set(self.average):
            raise ValueError("the saved weight average does not fit this model's trainable weights")
        for name, tensor in state.items():
            self.average[name].copy_(tensor)
