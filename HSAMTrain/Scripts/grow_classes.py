"""Grow a trained H-SAM model by new classes, so that ``hsam train`` can fine-tune it to segment them too.

    python grow_classes.py BASE_MODEL OUT_DIR CLASSES_JSON

Run by the HSAM Train module in the engine's Python, like the engine's own commands. CLASSES_JSON lists every
class of the grown model (the base model's first, with their values unchanged, then the new ones). Every trained
tensor keeps its values; a tensor sized by the number of classes keeps them for the existing classes, and the new
classes' parts (mask tokens, hypernetwork MLPs, CMAttn entries) start as they would in a new model.
"""
import json
import sys

import torch

import hsam
from hsam.models.model_dir import trainable_state


def grown(trained: torch.Tensor, fresh: torch.Tensor) -> torch.Tensor:
    """``fresh`` with ``trained``'s values where the two overlap."""
    out = fresh.clone()
    out[tuple(slice(0, n) for n in trained.shape)] = trained
    return out


def grow(base: str, out: str, classes: list) -> None:
    model = hsam.load_model(base, merge_lora=False)
    card = model.card
    if [c["name"].lower() for c in classes[:len(card["labels"])]] != [c["name"].lower() for c in card["labels"]]:
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
    print(json.dumps({"event": "log", "message": f"{card['id']} grown by {added} in {out}"}), flush=True)


if __name__ == "__main__":
    try:
        with open(sys.argv[3], encoding="utf-8") as f:
            grow(sys.argv[1], sys.argv[2], json.load(f))
    except Exception as exc:
        print(f"hsam: error: growing the model by new classes failed: {exc}", file=sys.stderr)
        sys.exit(1)
