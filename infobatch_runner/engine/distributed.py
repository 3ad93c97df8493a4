"""Data-parallel training under torchrun: one plan for all ranks, an equal shard each, and the
strategy's observations merged once per epoch.

    torchrun --nproc_per_node=K $(which infobatch-run) prune=infobatch ...

Every rank builds the same strategy from the same seed and so computes the same plan; rank r
trains positions r, r+K, r+2K, ... of it (padded by repeating its head to a multiple of K, so
that every rank takes the same number of steps). Each rank keeps the (index, loss) pairs it
trained on the device; at the epoch's end they are all-gathered (int64 indices, float32 losses,
never an index packed into a float) and every rank replays all of them into its strategy, in
rank order, so the strategy states stay identical. Only rank 0 writes files and logs to W&B.
"""

import os
from dataclasses import dataclass
from datetime import datetime

import torch
import torch.distributed as dist

from infobatch_runner.pruning import Plan


@dataclass(frozen=True)
class World:
    rank: int
    size: int
    local_rank: int

    @property
    def is_main(self) -> bool:
        return self.rank == 0


SINGLE = World(0, 1, 0)


def uses_cuda(device: str) -> bool:
    """Whether trainer.device (auto | cpu | cuda | cuda:N) will train on a GPU here."""
    return device != "cpu" and torch.cuda.is_available()


def world_from_env(device: str = "auto") -> World:
    """The torchrun world (WORLD_SIZE > 1), its process group initialised; else a single process.

    The first call decides the backend from trainer.device: NCCL when the ranks train on GPUs, each
    bound to its LOCAL_RANK's GPU before NCCL starts (else every rank would talk from cuda:0);
    gloo on CPUs, trainer.device=cpu included. Later calls return the initialised world."""
    size = int(os.environ.get("WORLD_SIZE", "1"))
    if size <= 1:
        return SINGLE
    local_rank = int(os.environ.get("LOCAL_RANK", "0"))
    if not dist.is_initialized():
        if uses_cuda(device):
            gpu = torch.device("cuda", local_rank)
            torch.cuda.set_device(gpu)
            dist.init_process_group("nccl", device_id=gpu)
        else:
            dist.init_process_group("gloo")
    return World(dist.get_rank(), dist.get_world_size(), local_rank)


def augment_seed(seed: int, world: World) -> int:
    """The seed of a rank's augmentation stream: the run seed on rank 0 (a single process is rank
    0), another stream on every other rank, so that ranks do not crop and flip alike."""
    return seed if world.rank == 0 else (seed + 1_000_003 * world.rank) % 2**64  # a generator seed is 64-bit


def any_rank(flag: bool, world: World, device: torch.device) -> bool:
    """True on every rank when `flag` is true on any (ranks must agree to skip a batch: a rank that
    skipped a backward would leave the others waiting in its gradient all-reduce)."""
    if world.size == 1:
        return flag
    t = torch.tensor([int(flag)], device=device)
    dist.all_reduce(t, op=dist.ReduceOp.MAX)
    return bool(t.item())


def agreed_overrides(world: World, args: list[str]) -> list[str]:
    """Extra Hydra overrides so that all ranks use rank 0's run folder, and only rank 0 writes it."""
    if world.size == 1:
        return []
    stamp = [datetime.now().strftime("%Y-%m-%d/%H-%M-%S")]
    dist.broadcast_object_list(stamp, src=0)
    extra = []
    if not any(a.startswith("hydra.run.dir=") for a in args):
        extra.append(f"hydra.run.dir=outputs/runs/{stamp[0]}_ddp")
    if not world.is_main:
        extra += ["hydra.output_subdir=null", "hydra/job_logging=disabled"]
    return extra


def rank0_verdict(world: World, refusal: tuple[str, str] | None) -> tuple[str, str] | None:
    """Rank 0's decision about the run folder, on every rank: None to go on, or (kind, sentence)
    of its refusal. Only rank 0 checks and claims the folder; without this the other ranks would
    start training and die in a collective with the rank that left."""
    if world.size == 1:
        return refusal
    box = [refusal]
    dist.broadcast_object_list(box, src=0)
    return box[0]


def shard(plan: Plan, world: World) -> Plan:
    """This rank's equal share of the plan (the plan padded by its head to a multiple of the size)."""
    if world.size == 1:
        return plan
    n = len(plan)
    padded = -(-n // world.size) * world.size
    order = torch.arange(padded, device=plan.indices.device) % n
    mine = order[world.rank :: world.size]
    return Plan(plan.indices.index_select(0, mine), plan.weights.index_select(0, mine))


class Observations:
    """Collects the epoch's (index, loss) pairs on the device; merge() replays every rank's into the
    strategy once per epoch."""

    def __init__(self):
        self.indices: list[torch.Tensor] = []
        self.losses: list[torch.Tensor] = []

    def observe(self, indices: torch.Tensor, losses: torch.Tensor) -> None:
        self.indices.append(indices)
        self.losses.append(losses.detach().float())

    def merge(self, strategy, world: World) -> None:
        if not self.indices:
            return
        indices = torch.cat(self.indices).long()
        losses = torch.cat(self.losses)
        self.indices, self.losses = [], []
        if world.size > 1:
            indices, losses = _gather(indices, world), _gather(losses, world)
        strategy.observe(*first_occurrences(indices, losses, strategy.num_samples))


def first_occurrences(indices: torch.Tensor, losses: torch.Tensor, num_samples: int):
    """Each index once, with the loss of its first occurrence (in rank order). The padding of the
    shards trains a few samples twice; scattering duplicates (index_copy_) is nondeterministic on
    CUDA, and ranks whose strategy states drift apart would plan different epochs."""
    position = torch.arange(indices.shape[0], device=indices.device)
    first = torch.full((num_samples,), indices.shape[0], dtype=torch.long, device=indices.device)
    first.scatter_reduce_(0, indices, position, reduce="amin")
    keep = first.index_select(0, indices) == position
    return indices[keep], losses[keep]


def _gather(t: torch.Tensor, world: World) -> torch.Tensor:
    """Every rank's 1-D tensor, concatenated in rank order (lengths may differ: skipped batches)."""
    n = torch.tensor([t.shape[0]], device=t.device)
    sizes = [torch.empty_like(n) for _ in range(world.size)]
    dist.all_gather(sizes, n)
    longest = int(max(sizes).item())
    padded = torch.cat([t, t.new_zeros(longest - t.shape[0])])
    parts = [torch.empty_like(padded) for _ in range(world.size)]
    dist.all_gather(parts, padded)
    return torch.cat([p[: int(k.item())] for p, k in zip(parts, sizes)])


def all_sum(t: torch.Tensor, world: World) -> torch.Tensor:
    if world.size > 1:
        dist.all_reduce(t)
    return t


def broadcast_tensor(t: torch.Tensor, world: World) -> torch.Tensor:
    """Rank 0's copy of t on every rank (scores must select the same subset everywhere)."""
    if world.size > 1:
        dist.broadcast(t, src=0)
    return t
