"""TinyViT image encoder in the LiteMedSAM variant (256 input, stride-4 64x64x256 embedding).

Parameter names follow the LiteMedSAM checkpoint (``image_encoder.*`` of ``lite_medsam.pth``) so it loads strictly.
This variant differs from the ImageNet TinyViT: the patch embedding is two 1x1 convolutions (no stride), and the
last patch merging keeps the resolution, so the four stages run at S, S/2, S/4, S/4.
"""
from __future__ import annotations

import itertools
from functools import partial
from typing import Callable, List, Sequence, Tuple

import torch
import torch.nn as nn
import torch.nn.functional as F
from segment_anything.modeling.common import LayerNorm2d


class Conv2dBN(nn.Sequential):
    """Convolution without bias followed by batch norm (keys ``c`` and ``bn``)."""

    def __init__(self, in_ch: int, out_ch: int, kernel: int = 1, stride: int = 1, pad: int = 0, groups: int = 1,
                 bn_weight_init: float = 1.0) -> None:
        super().__init__()
        self.add_module("c", nn.Conv2d(in_ch, out_ch, kernel, stride, pad, groups=groups, bias=False))
        bn = nn.BatchNorm2d(out_ch)
        nn.init.constant_(bn.weight, bn_weight_init)
        nn.init.zeros_(bn.bias)
        self.add_module("bn", bn)


class PatchEmbed(nn.Module):
    def __init__(self, in_chans: int, embed_dim: int) -> None:
        super().__init__()
        self.seq = nn.Sequential(Conv2dBN(in_chans, embed_dim // 2), nn.GELU(), Conv2dBN(embed_dim // 2, embed_dim))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.seq(x)


class MBConv(nn.Module):
    """Inverted residual block of the convolutional first stage."""

    def __init__(self, dim: int, expand_ratio: float) -> None:
        super().__init__()
        hidden = int(dim * expand_ratio)
        self.conv1 = Conv2dBN(dim, hidden)
        self.conv2 = Conv2dBN(hidden, hidden, kernel=3, pad=1, groups=hidden)
        self.conv3 = Conv2dBN(hidden, dim, bn_weight_init=0.0)
        self.act = nn.GELU()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        y = self.act(self.conv1(x))
        y = self.act(self.conv2(y))
        return self.act(self.conv3(y) + x)


class PatchMerging(nn.Module):
    """Channel change plus an optional stride-2 depthwise convolution; returns tokens (B, N, C)."""

    def __init__(self, dim: int, out_dim: int, stride: int) -> None:
        super().__init__()
        self.conv1 = Conv2dBN(dim, out_dim)
        self.conv2 = Conv2dBN(out_dim, out_dim, kernel=3, stride=stride, pad=1, groups=out_dim)
        self.conv3 = Conv2dBN(out_dim, out_dim)
        self.act = nn.GELU()

    def forward(self, x: torch.Tensor, hw: Tuple[int, int]) -> torch.Tensor:
        if x.ndim == 3:
            x = x.transpose(1, 2).reshape(x.shape[0], -1, hw[0], hw[1])
        x = self.act(self.conv1(x))
        x = self.act(self.conv2(x))
        return self.conv3(x).flatten(2).transpose(1, 2)


class WindowAttention(nn.Module):
    """Multi-head attention inside a window, with a learned bias per (|dy|, |dx|) offset and head."""

    def __init__(self, dim: int, num_heads: int, window_size: int) -> None:
        super().__init__()
        self.num_heads = num_heads
        self.head_dim = dim // num_heads
        self.scale = self.head_dim ** -0.5
        self.norm = nn.LayerNorm(dim)
        # Fused projection laid out per head as [q | k | v] (head_dim each); LoRA indexes into it.
        self.qkv = nn.Linear(dim, 3 * dim)
        self.proj = nn.Linear(dim, dim)
        points = list(itertools.product(range(window_size), range(window_size)))
        offsets = {}
        idxs = []
        for p1 in points:
            for p2 in points:
                off = (abs(p1[0] - p2[0]), abs(p1[1] - p2[1]))
                idxs.append(offsets.setdefault(off, len(offsets)))
        self.attention_biases = nn.Parameter(torch.zeros(num_heads, len(offsets)))
        self.register_buffer("attention_bias_idxs", torch.tensor(idxs).view(len(points), len(points)),
                             persistent=False)

    def qv_channels(self) -> Tuple[torch.Tensor, torch.Tensor]:
        """Output channels of ``qkv`` holding q and v (interleaved per head)."""
        base = torch.arange(self.num_heads) * 3 * self.head_dim
        within = torch.arange(self.head_dim)
        q = (base[:, None] + within[None]).flatten()
        return q, q + 2 * self.head_dim

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        b, n, _ = x.shape
        qkv = self.qkv(self.norm(x)).view(b, n, self.num_heads, 3 * self.head_dim).permute(0, 2, 1, 3)
        q, k, v = qkv.split(self.head_dim, dim=-1)
        bias = self.attention_biases[:, self.attention_bias_idxs]
        out = F.scaled_dot_product_attention(q, k, v, attn_mask=bias.to(q.dtype), scale=self.scale)
        return self.proj(out.transpose(1, 2).reshape(b, n, -1))


class TinyViTBlock(nn.Module):
    def __init__(self, dim: int, num_heads: int, window_size: int, mlp_ratio: float) -> None:
        super().__init__()
        self.window_size = window_size
        self.attn = WindowAttention(dim, num_heads, window_size)
        hidden = int(dim * mlp_ratio)
        self.mlp = nn.Sequential()
        self.mlp.add_module("norm", nn.LayerNorm(dim))
        self.mlp.add_module("fc1", nn.Linear(dim, hidden))
        self.mlp.add_module("act", nn.GELU())
        self.mlp.add_module("fc2", nn.Linear(hidden, dim))
        self.local_conv = Conv2dBN(dim, dim, kernel=3, pad=1, groups=dim)

    def forward(self, x: torch.Tensor, hw: Tuple[int, int]) -> torch.Tensor:
        h, w = hw
        b, n, c = x.shape
        ws = self.window_size
        pad_b, pad_r = (ws - h % ws) % ws, (ws - w % ws) % ws
        win = F.pad(x.view(b, h, w, c), (0, 0, 0, pad_r, 0, pad_b))
        ph, pw = h + pad_b, w + pad_r
        win = win.view(b, ph // ws, ws, pw // ws, ws, c).transpose(2, 3).reshape(-1, ws * ws, c)
        win = self.attn(win)
        win = win.view(b, ph // ws, pw // ws, ws, ws, c).transpose(2, 3).reshape(b, ph, pw, c)
        x = x + win[:, :h, :w].reshape(b, n, c)
        x = self.local_conv(x.transpose(1, 2).reshape(b, c, h, w)).view(b, c, n).transpose(1, 2)
        return x + self.mlp(x)


class ConvStage(nn.Module):
    def __init__(self, dim: int, depth: int, out_dim: int, expand_ratio: float) -> None:
        super().__init__()
        self.blocks = nn.ModuleList([MBConv(dim, expand_ratio) for _ in range(depth)])
        self.downsample = PatchMerging(dim, out_dim, stride=2)

    def forward(self, x: torch.Tensor, hw: Tuple[int, int]) -> torch.Tensor:
        for blk in self.blocks:
            x = blk(x)
        return self.downsample(x, hw)


class AttentionStage(nn.Module):
    """Attention blocks, then an optional patch merging (run block by block by ``TinyViT.steps``)."""

    def __init__(self, dim: int, depth: int, num_heads: int, window_size: int, mlp_ratio: float,
                 out_dim: int = 0, merge_stride: int = 2) -> None:
        super().__init__()
        self.blocks = nn.ModuleList([TinyViTBlock(dim, num_heads, window_size, mlp_ratio) for _ in range(depth)])
        self.downsample = PatchMerging(dim, out_dim, merge_stride) if out_dim else None


class TinyViT(nn.Module):
    """Image batch (B, 3, S, S) -> embedding (B, 256, S/4, S/4)."""

    def __init__(self, img_size: int = 256, embed_dims: Sequence[int] = (64, 128, 160, 320),
                 depths: Sequence[int] = (2, 2, 6, 2), num_heads: Sequence[int] = (2, 4, 5, 10),
                 window_sizes: Sequence[int] = (7, 7, 14, 7), mlp_ratio: float = 4.0,
                 mbconv_expand_ratio: float = 4.0, out_chans: int = 256) -> None:
        super().__init__()
        self.img_size = img_size
        self.patch_embed = PatchEmbed(3, embed_dims[0])
        layers: List[nn.Module] = [ConvStage(embed_dims[0], depths[0], embed_dims[1], mbconv_expand_ratio)]
        last = len(embed_dims) - 1
        for i in range(1, len(embed_dims)):
            out_dim = embed_dims[i + 1] if i < last else 0
            # The last merge keeps the resolution so the embedding stays at stride 4.
            layers.append(AttentionStage(embed_dims[i], depths[i], num_heads[i], window_sizes[i], mlp_ratio,
                                         out_dim, merge_stride=1 if i == last - 1 else 2))
        self.layers = nn.ModuleList(layers)
        self.neck = nn.Sequential(
            nn.Conv2d(embed_dims[-1], out_chans, 1, bias=False), LayerNorm2d(out_chans),
            nn.Conv2d(out_chans, out_chans, 3, padding=1, bias=False), LayerNorm2d(out_chans))
        self.apply(_init_weights)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        for _, step in self.steps(x.shape[-1]):
            x = step(x)
        return x

    def steps(self, size: int) -> List[Tuple[bool, Callable[[torch.Tensor], torch.Tensor]]]:
        """The forward pass on (B, 3, size, size) images as (is an attention block, function) steps, so that it can
        run in two parts (``hsam.network.encoder_split``)."""
        hw = (size, size)
        steps: List[Tuple[bool, Callable[[torch.Tensor], torch.Tensor]]] = [
            (False, self.patch_embed), (False, partial(self.layers[0], hw=hw))]
        hw = (size // 2, size // 2)
        for i, layer in enumerate(self.layers[1:], start=1):
            steps += [(True, partial(block, hw=hw)) for block in layer.blocks]
            if layer.downsample is not None:
                steps.append((False, partial(layer.downsample, hw=hw)))
            if i < len(self.layers) - 2:
                hw = (hw[0] // 2, hw[1] // 2)
        steps.append((False, partial(self._neck, hw=hw)))
        return steps

    def _neck(self, tokens: torch.Tensor, hw: Tuple[int, int]) -> torch.Tensor:
        b, _, c = tokens.shape
        return self.neck(tokens.transpose(1, 2).reshape(b, c, hw[0], hw[1]))


def _init_weights(m: nn.Module) -> None:
    if isinstance(m, nn.Linear):
        nn.init.trunc_normal_(m.weight, std=0.02)
        if m.bias is not None:
            nn.init.zeros_(m.bias)
    elif isinstance(m, nn.LayerNorm):
        nn.init.ones_(m.weight)
        nn.init.zeros_(m.bias)
