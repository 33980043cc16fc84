"""Small real models for tests: the real code path, fast and deterministic."""
from __future__ import annotations

from pathlib import Path


def tiny_model_dir(folder: Path) -> Path:
    """A tiny random-weight model with the BTCV card."""
    import hsam
    from hsam.models import BTCV_8_ORGANS, make_card

    model = hsam.build_hsam(hsam.HSAMConfig(backbone="litemedsam_tiny"), "random", seed=1)
    return hsam.save_model(model, folder, make_card(model, "tiny", {"source": "random", "seed": 1}, BTCV_8_ORGANS))


def tiny_liver_model_dir(path: Path, model_id: str = "tiny-liver", seed: int = 1) -> Path:
    """A tiny random-weight one-organ model (stage 1 only): the smallest model a registry test can install."""
    import hsam
    from hsam.models import make_card

    model = hsam.build_hsam(hsam.HSAMConfig(backbone="litemedsam_tiny", num_classes=2, stage2=False,
                                            decoder_mlp_dim=64), "random", seed=seed)
    return hsam.save_model(model, path, make_card(model, model_id, {"source": "random", "seed": seed}))


def tiny_one_class_model_dir(path: Path, label: dict, normalization: dict, model_id: str = "tiny-one-class") -> Path:
    """A tiny random-weight model (stage 1 only) of one class ``label`` (value 1), fed as ``normalization`` says."""
    import hsam
    from hsam.models import make_card

    model = hsam.build_hsam(hsam.HSAMConfig(backbone="litemedsam_tiny", num_classes=2, stage2=False,
                                            decoder_mlp_dim=64), "random", seed=1)
    card = make_card(model, model_id, {"source": "random", "seed": 1}, [dict(label, value=1)],
                     normalization=dict(normalization))
    return hsam.save_model(model, path, card)
