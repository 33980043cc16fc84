"""The JSON model card: everything needed to rebuild, feed and interpret a model. It is plain data (never code)."""
from __future__ import annotations

import json
from pathlib import Path
from typing import Any, Dict

from ..atomic import write_atomic

FORMAT = "hsam-model/1"
CARD_FILE = "model.json"
WEIGHTS_FILE = "weights.safetensors"

CT_WINDOW = {"kind": "ct_window", "window": [-125.0, 275.0]}

# Slices are taken along the patient's superior axis with rows running anterior->posterior and columns
# right->left (image axes i->L, j->P, k->S): the layout of the btcv_synapse volumes and of SimpleITK/Slicer arrays.
DEFAULT_ORIENTATION = "LPS"


class ModelCardError(ValueError):
    pass


def read_card(directory: Path) -> Dict[str, Any]:
    path = Path(directory) / CARD_FILE
    if not path.is_file():
        raise ModelCardError(f"{directory}: not a model directory ({CARD_FILE} missing)")
    try:
        card = json.loads(path.read_text(encoding="utf-8"))
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        raise ModelCardError(f"{path}: not valid JSON ({exc})") from None
    if not isinstance(card, dict) or card.get("format") != FORMAT:
        found = card.get("format") if isinstance(card, dict) else None
        raise ModelCardError(f"{path}: unsupported model card format {found!r} (expected {FORMAT!r}); update hsam "
                             "or re-export the model")
    for key in ("id", "config", "backbone_weights", "labels", "normalization", "files"):
        if key not in card:
            raise ModelCardError(f"{path}: model card lacks '{key}'")
    return card


def write_json_atomic(path: Path, data: Dict[str, Any]) -> None:
    text = json.dumps(data, indent=2) + "\n"
    write_atomic(path, lambda tmp: Path(tmp).write_text(text, encoding="utf-8"))
