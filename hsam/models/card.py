"""The JSON model card: everything needed to rebuild, feed and interpret a model. It is plain data (never code)."""
from __future__ import annotations

import json
from functools import lru_cache
from pathlib import Path
from typing import Any, Dict, Optional, Union

from ..atomic import write_atomic
from ..io.normalize import CT_DEFAULT_WINDOW, MR_DEFAULT_PERCENTILES
from ..progress import json_safe

FORMAT = "hsam-model/1"
CARD_FILE = "model.json"
WEIGHTS_FILE = "weights.safetensors"
SCHEMA_FILE = Path(__file__).with_name("model-card.schema.json")

CT_WINDOW = {"kind": "ct_window", "window": list(CT_DEFAULT_WINDOW)}
# MR has no absolute scale: each scan is scaled by robust percentiles of its own non-zero voxels.
MR_PERCENTILES = {"kind": "percentiles", "percentiles": list(MR_DEFAULT_PERCENTILES)}
NORMALIZATION_OF_MODALITY = {"ct": CT_WINDOW, "mr": MR_PERCENTILES}
MODALITIES = tuple(NORMALIZATION_OF_MODALITY)


def modality_of(card: Dict[str, Any]) -> str:
    """"ct" for a model fed Hounsfield units through a window, "mr" for one fed per-scan scaled intensities."""
    return "ct" if (card.get("normalization") or {}).get("kind", "ct_window") == "ct_window" else "mr"

# Slices are taken along the patient's superior axis with rows running anterior->posterior and columns
# right->left (image axes i->L, j->P, k->S): the layout of the btcv_synapse volumes and of SimpleITK/Slicer arrays.
DEFAULT_ORIENTATION = "LPS"


class ModelCardError(ValueError):
    pass


def read_card(directory: Path) -> Dict[str, Any]:
    path = Path(directory) / CARD_FILE
    if not path.is_file():
        raise ModelCardError(f"{directory}: not a model directory ({CARD_FILE} missing)")
    return parse_card(path.read_bytes(), path)


def parse_card(data: bytes, where: Union[str, Path]) -> Dict[str, Any]:
    """A card from the bytes of a ``model.json`` (a file, or an entry of a zip not yet unpacked), checked."""
    try:
        card = json.loads(data.decode("utf-8"))
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        raise ModelCardError(f"{where}: not valid JSON ({exc})") from None
    if not isinstance(card, dict) or card.get("format") != FORMAT:
        found = card.get("format") if isinstance(card, dict) else None
        raise ModelCardError(f"{where}: unsupported model card format {found!r} (expected {FORMAT!r}); update hsam "
                             "or re-export the model")
    check_card(card, where)
    return card


@lru_cache(maxsize=1)
def _validator():
    from jsonschema import Draft202012Validator

    schema = json.loads(SCHEMA_FILE.read_text(encoding="utf-8"))
    Draft202012Validator.check_schema(schema)
    return Draft202012Validator(schema)


def _field(error) -> str:
    return "".join(f"[{p}]" if isinstance(p, int) else f".{p}" for p in error.absolute_path).lstrip(".") or "card"


def check_card(card: Any, where: Union[str, Path]) -> None:
    """``card`` against the schema (``model-card.schema.json``, the one description of a card), then the one rule
    a schema cannot say: one label per foreground class. The error names the first bad field."""
    errors = sorted(_validator().iter_errors(card), key=lambda e: (len(e.absolute_path), list(map(str, e.path))))
    if errors:
        error = errors[0]
        more = f" (and {len(errors) - 1} more problem(s))" if len(errors) > 1 else ""
        raise ModelCardError(f"{where}: invalid model card: {_field(error)}: {error.message}{more}")
    classes = card["config"]["num_classes"]
    values = sorted(label["value"] for label in card["labels"])
    if values != list(range(1, classes)):
        raise ModelCardError(f"{where}: invalid model card: labels: values {values} do not match config.num_classes "
                             f"{classes} (one label for each of the values 1 to {classes - 1})")


def write_json_atomic(path: Path, data: Dict[str, Any]) -> None:
    # Strict JSON, as every reader expects: a non-finite number (a metric of an empty organ) is written as null.
    text = json.dumps(json_safe(data), indent=2, allow_nan=False) + "\n"
    write_atomic(path, lambda tmp: Path(tmp).write_text(text, encoding="utf-8"))


def record_evaluation(directory: Union[str, Path], comparison: Dict[str, Any],
                      training: Optional[Dict[str, Any]] = None) -> Path:
    """Record in a model directory's card how the model and its base model score on the same cases
    (``comparison``), and add ``training``'s fields to the card's training record (e.g. how the cases were
    prepared). The card is checked against the schema before it replaces the old one (write-then-rename). Its
    ``files`` list the model's other files, whose sha256 stay valid: a card never lists itself."""
    path = Path(directory) / CARD_FILE
    card = read_card(Path(directory))
    card["comparison"] = comparison
    card["training"] = {**card.get("training", {}), **(training or {})}
    check_card(json_safe(card), path)
    write_json_atomic(path, card)
    return path
