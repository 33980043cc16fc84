"""A loaded model rewritten for inference, same weights and maths, less work per slice.

Measured on the default model (LiteMedSAM H-SAM at 256) on a 2-core AVX-512 BF16 CPU, one slice per pass; each
step removes work the plain forward repeats for every slice:

- batch norms folded into the convolutions before them (TinyViT's ``Conv2dBN``): one pass over each activation
  instead of two;
- TinyViT's window attention as two matrix products and a softmax, with its relative-position bias gathered once:
  ``scaled_dot_product_attention`` with a mask falls back on the CPU to a path that checks every row for -inf
  (``isneginf``, ``all``, ``where``: 30 ms of a 450 ms bf16 pass) and the bias was gathered anew per call;
- under a low-precision autocast, the weights of linear and convolution layers stored in that precision once, so
  autocast does not cast them again for every slice (it caches casts only for weights that require grad). The
  layer that reads the intensities (``patch_embed``) stays float32: in bf16 the input itself loses 8 of its 16
  bits, which changed more labels than all the other layers together;
- on a CPU, convolutions in channels-last layout (oneDNN's native one: no reorder before and after each).

In float32 the outputs match the plain model to rounding (about 1e-5); labels are compared in the tests and in
``hsam benchmark --end-to-end``.
"""
from __future__ import annotations

from typing import Dict, Optional

import torch
import torch.nn as nn

from ..network.tiny_vit import WindowAttention

_LOW_PRECISION_LAYERS = (nn.Linear, nn.Conv2d, nn.ConvTranspose2d)


def prepare_for_inference(model: nn.Module, device: torch.device, amp_dtype: Optional[torch.dtype], *,
                          encoder: bool = True) -> nn.Module:
    """Rewrite ``model`` (eval mode, on ``device``) in place for inference under ``amp_dtype`` autocast (None:
    float32). ``encoder=False`` leaves the image encoder exactly as loaded (its outputs are stored and shared,
    see embedding_store.py). A model is prepared for one precision: its weights may be stored in it."""
    prepared = getattr(model, "inference_precision", amp_dtype)
    if prepared != amp_dtype:
        raise ValueError(f"this model was prepared for {prepared or torch.float32} inference and cannot run in "
                         f"{amp_dtype or torch.float32}; load it again (hsam.load_model) for another precision")
    model.inference_precision = amp_dtype
    parts = [m for name, m in model.named_children() if encoder or name != "backbone"]
    for part in parts:
        fold_batch_norms(part)
        if device.type == "cpu":
            for module in part.modules():
                if type(module) is WindowAttention:
                    module.__class__ = GemmWindowAttention
        if amp_dtype is not None:
            store_weights_in(part, amp_dtype)
    if device.type == "cpu":
        model.to(memory_format=torch.channels_last)
    return model


def fold_batch_norms(module: nn.Module) -> int:
    """Fold every eval-mode BatchNorm2d that directly follows a Conv2d in an ``nn.Sequential`` into that
    convolution (the norm becomes an identity); returns how many."""
    folded = 0
    for seq in [m for m in module.modules() if isinstance(m, nn.Sequential)]:
        names = list(seq._modules)
        for first, second in zip(names, names[1:]):
            conv, norm = seq._modules[first], seq._modules[second]
            if type(conv) is nn.Conv2d and type(norm) is nn.BatchNorm2d and not norm.training \
                    and norm.track_running_stats:
                seq._modules[first] = _folded(conv, norm)
                seq._modules[second] = nn.Identity()
                folded += 1
    return folded


def _folded(conv: nn.Conv2d, norm: nn.BatchNorm2d) -> nn.Conv2d:
    with torch.no_grad():
        scale = norm.running_var.double().add(norm.eps).rsqrt()
        if norm.weight is not None:
            scale = scale * norm.weight.double()
        bias = -norm.running_mean.double() * scale
        if norm.bias is not None:
            bias = bias + norm.bias.double()
        if conv.bias is not None:
            bias = bias + conv.bias.double() * scale
        out = nn.Conv2d(conv.in_channels, conv.out_channels, conv.kernel_size, conv.stride, conv.padding,
                        conv.dilation, conv.groups, bias=True, padding_mode=conv.padding_mode,
                        device=conv.weight.device, dtype=conv.weight.dtype)
        out.weight.copy_(conv.weight.double() * scale.reshape(-1, 1, 1, 1))
        out.bias.copy_(bias)
    out.requires_grad_(False)
    return out


def store_weights_in(module: nn.Module, dtype: torch.dtype) -> None:
    """Linear and convolution weights in ``dtype``, as autocast would cast them, except under ``patch_embed``,
    which is kept float32 and run outside autocast."""
    for parent in list(module.modules()):
        child = parent._modules.get("patch_embed")
        if child is not None and not isinstance(child, Float32):
            parent._modules["patch_embed"] = Float32(child)
    keep = {id(inner) for wrapper in module.modules() if isinstance(wrapper, Float32) for inner in wrapper.modules()}
    for m in module.modules():
        if isinstance(m, _LOW_PRECISION_LAYERS) and id(m) not in keep:
            m.weight.data = m.weight.data.to(dtype)
            if m.bias is not None:
                m.bias.data = m.bias.data.to(dtype)


class Float32(nn.Module):
    """Runs ``inner`` in float32 with autocast off."""

    def __init__(self, inner: nn.Module) -> None:
        super().__init__()
        self.inner = inner

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        with torch.autocast(x.device.type, enabled=False):
            return self.inner(x.float())


class GemmWindowAttention(WindowAttention):
    """``WindowAttention`` with the same parameters: scores, softmax and the product with V as plain operations,
    the bias gathered once per dtype."""

    _bias: Dict[torch.dtype, torch.Tensor]

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        b, n, _ = x.shape
        qkv = self.qkv(self.norm(x)).view(b, n, self.num_heads, 3 * self.head_dim).permute(0, 2, 1, 3)
        q, k, v = qkv.split(self.head_dim, dim=-1)
        scores = torch.matmul(q * self.scale, k.transpose(-2, -1)) + self._attention_bias(q.dtype)
        out = torch.matmul(torch.softmax(scores, dim=-1), v)
        return self.proj(out.transpose(1, 2).reshape(b, n, -1))

    def _attention_bias(self, dtype: torch.dtype) -> torch.Tensor:
        cache = self.__dict__.setdefault("_bias", {})
        if dtype not in cache:
            cache[dtype] = self.attention_biases[:, self.attention_bias_idxs].detach().to(dtype)
        return cache[dtype]
