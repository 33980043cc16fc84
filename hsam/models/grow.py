"""Grow a trained H-SAM model by new classes, so that ``hsam train`` can fine-tune it to segment them too
(``hsam models grow BASE OUT CLASSES_JSON``; HSAM Train runs it for a "new class" mapping).

CLASSES_JSON lists every class of the grown model (the base model's first, with their values unchanged, then the
new ones). Every trained tensor keeps its values; a tensor sized by the number of classes keeps them for the
existing classes, and the new classes' parts (mask tokens, hypernetwork MLPs, CMAttn entries) start as they would
in a new model.
"""
from __future__ import annotations

from pathlib import Path
from typing import Dict, List, Union

import torch

from .labels import name_key
from .model_dir import trainable_state


def grown(trained: torch.Tensor, fresh: torch.Tensor) -> torch.Tensor:
    """``fresh`` with ``trained``'s values where the two overlap."""
    out = fresh.clone()
    out[tuple(slice(0, n) for n in trained.shape)] = trained
    return out


def grow_classes(base: str, out: Union[str, Path], classes: List[Dict]) -> str:
    """Write the grown model to ``out``; returns a one-line summary."""
    import hsam

    model = hsam.load_model(base, merge_lora=False)
    card = model.card
    if [name_key(c["name"]) for c in classes[:len(card["labels"])]] != [name_key(c["name"]) for c in card["labels"]]:
        raise ValueError("the classes must start with the base model's classes, in their order")
    config = hsam.HSAMConfig.from_dict(dict(card["config"], num_classes=len(classes) + 1))
    bigger = hsam.build_hsam(config, "random", seed=0)  # the new parts as in a new model; the backbone is unused
    state = trainable_state(bigger)
    for key, value in trainable_state(model).items():
        state[key] = value if value.shape == state[key].shape else grown(value, state[key])
    bigger.load_state_dict(state, strict=False)
    added = ", ".join(c["name"] for c in classes[len(card["labels"]):])
    hsam.save_model(bigger, out, dict(card, config=config.to_dict(), labels=classes, metrics={},
                                      description=f"{card['id']} with new classes: {added}"))
    return f"{card['id']} grown by {added} in {out}"
