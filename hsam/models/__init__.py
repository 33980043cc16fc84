"""Models on disk: model cards, label sets, saving and loading."""
from .card import FORMAT, ModelCardError, read_card
from .labels import BTCV_8_ORGANS
from .model_dir import hsam_home, load_model, make_card, save_model

__all__ = ["FORMAT", "ModelCardError", "read_card", "BTCV_8_ORGANS", "hsam_home", "load_model", "make_card",
           "save_model"]
