"""DistributedDataParallel support for ``torchrun``.

Launch (one process per GPU; on CPU the gloo backend, e.g. for testing)::

    torchrun --nproc_per_node 2 -m engine.train --data DIR --out OUT [flags...]

``torchrun`` sets RANK / WORLD_SIZE / LOCAL_RANK; every process holds the
whole (preprocessed, in-memory) dataset, trains on its shard of each epoch's
permutation (padded to equal length so that every rank takes the same number
of steps), and evaluates the full validation set with identical weights.
Only rank 0 writes checkpoints and outputs.
"""

from __future__ import annotations

import os
from dataclasses import dataclass

import torch


@dataclass(frozen=True)
class DistInfo:
    rank: int = 0
    world: int = 1
    local_rank: int = 0

    @property
    def is_main(self) -> bool:
        return self.rank == 0

    def shard(self, order: torch.Tensor) -> torch.Tensor:
        """This rank's part of an epoch permutation (DistributedSampler's rule)."""
        if self.world == 1 or len(order) == 0:
            return order
        total = -(-len(order) // self.world) * self.world
        padded = torch.cat([order, order[: total - len(order)]]) if total > len(order) else order
        return padded[self.rank::self.world]


def init_from_env(device: str) -> DistInfo:
    """Join the process group when started by torchrun; a single process otherwise."""
    world = int(os.environ.get("WORLD_SIZE", "1"))
    if world <= 1:
        return DistInfo()
    import torch.distributed as dist

    rank, local = int(os.environ["RANK"]), int(os.environ.get("LOCAL_RANK", "0"))
    backend = "nccl" if device.startswith("cuda") and torch.cuda.is_available() else "gloo"
    if not dist.is_initialized():
        dist.init_process_group(backend=backend)
    if backend == "nccl":
        torch.cuda.set_device(local)
    return DistInfo(rank, world, local)


def device_for(info: DistInfo, device: str) -> str:
    """One GPU per local rank under torchrun."""
    if device.startswith("cuda") and info.world > 1:
        return f"cuda:{info.local_rank}"
    return device


def all_reduce_sum(info: DistInfo, values: list[float]) -> list[float]:
    """Sum numbers over all ranks (identity for one process)."""
    if info.world <= 1:
        return values
    import torch.distributed as dist

    t = torch.tensor(values, dtype=torch.float64)
    dist.all_reduce(t, op=dist.ReduceOp.SUM)
    return t.tolist()


def barrier(info: DistInfo) -> None:
    if info.world > 1:
        import torch.distributed as dist

        dist.barrier()


def cleanup(info: DistInfo) -> None:
    if info.world > 1:
        import torch.distributed as dist

        if dist.is_initialized():
            dist.destroy_process_group()
