"""DDP: two gloo processes on CPU give the same gradients as one process on the combined batch, and
``hsam train`` runs under a two-process world (as under torchrun)."""
from __future__ import annotations

import json
import os
import socket

import pytest
import torch
import torch.distributed as dist
import torch.multiprocessing as mp
from torch.nn.parallel import DistributedDataParallel
from train_fixtures import btcv_pairs, tiny_settings

from hsam.network import HSAMConfig, build_hsam
from hsam.train.dataset import to_batch
from hsam.train.losses import hsam_loss
from hsam.train.model_setup import set_training_mode


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _model():
    """Tiny H-SAM with its random parts switched off (dropout, CMAttn noise): gradients must be comparable."""
    model = build_hsam(HSAMConfig(backbone="litemedsam_tiny", lora_rank=2, decoder_mlp_dim=64), "random", seed=5)
    for module in model.modules():
        if isinstance(module, torch.nn.Dropout):
            module.p = 0.0
    set_training_mode(model)
    return model


def _gradients(model):
    return {n: p.grad.detach().clone() for n, p in model.named_parameters() if p.requires_grad}


def _worker(rank, world, port, images, labels, result_dir, train_kwargs):
    os.environ.update(MASTER_ADDR="127.0.0.1", MASTER_PORT=str(port), RANK=str(rank), WORLD_SIZE=str(world),
                      LOCAL_RANK=str(rank))
    torch.set_num_threads(1)
    dist.init_process_group("gloo", rank=rank, world_size=world)
    try:
        model = _model()
        ddp = DistributedDataParallel(model, broadcast_buffers=False)
        share = slice(rank * 2, rank * 2 + 2)
        outputs = ddp(images[share], labels[share])
        loss, _ = hsam_loss(outputs, labels[share], stage1_weight=0.7, dice_weight=0.9, distributed=True)
        loss.backward()
        mean_loss = loss.detach().clone()
        dist.all_reduce(mean_loss)  # cross-entropy is per process; DDP averages its gradients the same way
        if rank == 0:
            torch.save({"loss": mean_loss / world, "grads": _gradients(model)}, os.path.join(result_dir, "ddp.pt"))
        # The whole command in the same two-process world.
        from hsam.train import train

        summary = train(tiny_settings(**train_kwargs))
        if rank == 0:
            with open(os.path.join(result_dir, "summary.json"), "w") as f:
                json.dump(summary, f)
    finally:
        dist.destroy_process_group()


def test_two_gloo_processes_match_one_process_on_the_combined_batch(data_dir, tmp_path):
    from hsam.train.dataset import pick_slices
    from hsam.models.label_map import load_label_map
    from hsam.train.case_loading import load_cases
    from hsam.train.case_manifest import Case
    from train_fixtures import BTCV_LABEL_MAP

    image, label = btcv_pairs(data_dir, ["case0005"])[0]
    volume = load_cases([Case(image, label)], load_label_map(str(BTCV_LABEL_MAP), None),
                        {"kind": "ct_window"}, "LPS", "square")
    slices = pick_slices(volume, fraction=0.04, empty_fraction=0.0, seed=1)
    images, labels = to_batch(slices.images[:4], slices.labels[:4], 64)

    single = _model()
    outputs = single(images, labels)
    loss, _ = hsam_loss(outputs, labels, stage1_weight=0.7, dice_weight=0.9)
    loss.backward()
    expected = _gradients(single)

    train_kwargs = dict(out=tmp_path / "ddp_model", cases=btcv_pairs(data_dir), epochs=1)
    mp.spawn(_worker, args=(2, _free_port(), images, labels, str(tmp_path), train_kwargs), nprocs=2, join=True)

    got = torch.load(tmp_path / "ddp.pt", weights_only=True)
    assert got["loss"].item() == pytest.approx(loss.item(), rel=1e-6)  # the Dice sums span both processes
    assert got["grads"].keys() == expected.keys()
    for name, grad in expected.items():
        torch.testing.assert_close(got["grads"][name], grad, rtol=1e-4, atol=1e-7, msg=name)
    summary = json.loads((tmp_path / "summary.json").read_text())
    card = json.loads((tmp_path / "ddp_model" / "model.json").read_text())
    assert summary["status"] == "complete" and card["training"]["steps"]["processes"] == 2
