"""Splitting one build across the processes `torchrun` starts, one per device.

torchrun sets RANK, WORLD_SIZE and LOCAL_RANK. Each rank renders its own
share of the plan into the shared cache; a gloo process group (it works for
CPU and GPU ranks alike) only provides the barrier before rank 0 writes the
site.
"""

from __future__ import annotations

import datetime
import os

import torch.distributed as dist


def rank_and_world() -> tuple[int, int]:
    return int(os.environ.get("RANK", 0)), int(os.environ.get("WORLD_SIZE", 1))


def start() -> tuple[int, int]:
    rank, world = rank_and_world()
    if world > 1 and not dist.is_initialized():
        # A long build's ranks finish far apart: wait at the barrier for days, not 30 minutes.
        dist.init_process_group("gloo", timeout=datetime.timedelta(days=7))
    return rank, world


def wait_for_all() -> None:
    if dist.is_initialized():
        dist.barrier()


def finish() -> None:
    if dist.is_initialized():
        dist.destroy_process_group()
