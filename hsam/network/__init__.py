"""The H-SAM network: backbones, LoRA, stage-1 decoder, CMAttn, mask cross-attention, hierarchical pixel decoder."""
from .backbones import BACKBONES, Backbone, build_backbone
from .build import build_hsam
from .config import HSAMConfig
from .hsam import HSAM

__all__ = ["BACKBONES", "Backbone", "build_backbone", "build_hsam", "HSAMConfig", "HSAM"]
