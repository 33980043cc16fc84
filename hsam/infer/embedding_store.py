"""Image embeddings of a frozen encoder kept on disk, so runs that share the encoder compute each one once.

The encoder is most of H-SAM's compute, and with ``--freeze-encoder`` it never changes: comparing several decoders
(cross-validation folds, ablations, re-runs with other settings) on the same images would otherwise encode the same
slices again and again. An embedding is stored under the SHA-256 of everything that determines it: the encoder's
weights, the autocast precision in force, and the exact bytes of the normalised, resized input slice. A different
model, precision or preprocessing therefore never reads a stale entry; it just misses.

Files are ``<key[:2]>/<key>.npy`` (float32, no pickles), written atomically, so a store may be shared by processes
run one after another and survives an interrupted run.
"""
from __future__ import annotations

import hashlib
from contextlib import contextmanager
from pathlib import Path
from typing import Iterator, List, Optional, Union

import numpy as np
import torch
import torch.nn as nn

from ..atomic import write_atomic
from ..precision import active_autocast_dtype


def weights_digest(module: nn.Module) -> str:
    """SHA-256 over a module's parameter and buffer names, shapes, dtypes and values."""
    digest = hashlib.sha256()
    for name, tensor in sorted(module.state_dict().items()):
        t = tensor.detach().cpu().contiguous().reshape(-1)
        digest.update(f"{name}:{tuple(t.shape)}:{t.dtype}".encode())
        digest.update(t.view(torch.uint8).numpy().tobytes() if t.numel() else b"")
    return digest.hexdigest()


class EmbeddingStore:
    def __init__(self, root: Union[str, Path]) -> None:
        self.root = Path(root)
        self.hits = 0
        self.misses = 0

    def _path(self, key: str) -> Path:
        return self.root / key[:2] / f"{key}.npy"

    def get(self, key: str) -> Optional[torch.Tensor]:
        path = self._path(key)
        if not path.is_file():
            return None
        return torch.from_numpy(np.load(path, allow_pickle=False))

    def put(self, key: str, embedding: torch.Tensor) -> None:
        array = embedding.detach().to("cpu", torch.float32).numpy()
        write_atomic(self._path(key), lambda tmp: np.save(tmp, array), suffix=".npy")


class StoredEncoder(nn.Module):
    """Wraps a frozen encoder: per input slice, the stored embedding if there is one, else the encoder's (then
    stored). Only for encoders whose weights do not change while it is in use."""

    def __init__(self, encoder: nn.Module, store: EmbeddingStore) -> None:
        super().__init__()
        self.encoder = encoder
        self.store = store
        self.identity = weights_digest(encoder)

    def _key(self, image: torch.Tensor) -> str:
        amp = active_autocast_dtype(image.device.type)
        digest = hashlib.sha256(f"{self.identity}:{amp}:{tuple(image.shape)}:{image.dtype}".encode())
        digest.update(image.detach().cpu().contiguous().numpy().tobytes())
        return digest.hexdigest()

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        keys = [self._key(image) for image in images]
        found: List[Optional[torch.Tensor]] = [self.store.get(k) for k in keys]
        missing = [i for i, e in enumerate(found) if e is None]
        self.store.hits += len(keys) - len(missing)
        self.store.misses += len(missing)
        if missing:
            computed = self.encoder(images[missing])
            for i, embedding in zip(missing, computed):
                self.store.put(keys[i], embedding)
                found[i] = embedding
            dtype = computed.dtype
        else:
            dtype = active_autocast_dtype(images.device.type) or images.dtype
        return torch.stack([e.to(images.device, dtype) for e in found])


@contextmanager
def stored_encoder(model: nn.Module, root: Union[str, Path, None]) -> Iterator[Optional[EmbeddingStore]]:
    """Within the block, ``model``'s encoder reads and fills the store at ``root`` (no-op for None)."""
    if root is None:
        yield None
        return
    backbone = model.backbone
    encoder = backbone.encoder
    store = EmbeddingStore(root)
    backbone.encoder = StoredEncoder(encoder, store)
    try:
        yield store
    finally:
        backbone.encoder = encoder
