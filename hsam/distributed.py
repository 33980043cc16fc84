"""Several processes under ``torchrun`` (one per GPU, on one or several nodes): ``hsam train`` averages gradients
over them (DDP), ``hsam segment`` shares a list of volumes among them.

torchrun sets RANK, WORLD_SIZE, LOCAL_RANK, MASTER_ADDR/PORT; each process joins the process group (NCCL on CUDA,
gloo on a CPU) and, when its device is CUDA, uses the GPU cuda:LOCAL_RANK (NCCL refuses two processes on one GPU;
CUDA_VISIBLE_DEVICES chooses which GPUs a node's processes get). A plain run is a world of one and touches none of
this.
"""
from __future__ import annotations

import datetime
import os
from dataclasses import dataclass
from typing import Any, List, Optional

import torch
import torch.distributed as dist


@dataclass(frozen=True)
class World:
    rank: int = 0
    size: int = 1
    local_rank: int = 0

    @property
    def is_main(self) -> bool:
        return self.rank == 0

    @property
    def distributed(self) -> bool:
        return self.size > 1


def is_initialized() -> bool:
    return dist.is_available() and dist.is_initialized()


def init_from_environment(device: torch.device, timeout: Optional[datetime.timedelta] = None) -> World:
    """Join the process group torchrun describes in the environment (kept when one is joined already); a plain
    run is a world of one. ``timeout``: how long a collective waits for the slowest process (torch's default
    when None)."""
    size = int(os.environ.get("WORLD_SIZE", "1"))
    if size <= 1:
        return World()
    local_rank = int(os.environ.get("LOCAL_RANK", "0"))
    if device.type == "cuda":
        # Before NCCL starts, so that its communicator lives on this process's GPU and not all on GPU 0.
        torch.cuda.set_device(process_device(device, World(size=size, local_rank=local_rank)))
    if not is_initialized():
        backend = "nccl" if device.type == "cuda" else "gloo"
        if timeout is None:
            dist.init_process_group(backend=backend)
        else:
            dist.init_process_group(backend=backend, timeout=timeout)
    return World(dist.get_rank(), dist.get_world_size(), local_rank)


def process_device(device: torch.device, world: World) -> torch.device:
    """This process's device: under torchrun any CUDA device means cuda:LOCAL_RANK; in a world of one, CUDA
    without an index is cuda:0 and ``--device cuda:1`` stays as asked."""
    if device.type != "cuda" or (device.index is not None and not world.distributed):
        return device
    if world.distributed and world.local_rank >= torch.cuda.device_count():
        raise ValueError(f"process {world.rank} has LOCAL_RANK {world.local_rank}, but only "
                         f"{torch.cuda.device_count()} CUDA GPU(s) are visible on its node: start at most that many "
                         "processes per node (torchrun --nproc_per_node)")
    return torch.device("cuda", world.local_rank)


def gather_objects(value: Any) -> List[Any]:
    """Every process's ``value`` (picklable), in rank order, on every process; ``[value]`` in a world of one."""
    if not is_initialized():
        return [value]
    values: List[Any] = [None] * dist.get_world_size()
    dist.all_gather_object(values, value)
    return values


def any_process(flag: bool, device: torch.device) -> bool:
    """True on every process when ``flag`` is true on any one (a stop request must stop all together)."""
    if not is_initialized():
        return flag
    t = torch.tensor([1.0 if flag else 0.0], device=device)
    dist.all_reduce(t, op=dist.ReduceOp.MAX)
    return bool(t.item())


def broadcast_flag(flag: bool, device: torch.device) -> bool:
    """Rank 0's decision (e.g. early stopping) on every process."""
    if not is_initialized():
        return flag
    t = torch.tensor([1.0 if flag else 0.0], device=device)
    dist.broadcast(t, src=0)
    return bool(t.item())


def barrier() -> None:
    if is_initialized():
        dist.barrier()


def shutdown() -> None:
    if is_initialized():
        dist.destroy_process_group()
