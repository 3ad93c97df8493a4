"""InfoBatch (and every other registered strategy) in your own training loop.

    from infobatch_runner.library import IndexedDataset, Pruner

    pruner = Pruner("infobatch", len(data), epochs, seed=0, ratio=0.5)
    loader = DataLoader(IndexedDataset(data), batch_sampler=pruner.batch_sampler(128), num_workers=4)
    for epoch in range(epochs):
        pruner.set_epoch(epoch)                       # the epoch's plan: len(loader) is this epoch's
        for x, y, idx in loader:
            loss = pruner.loss(F.cross_entropy(model(x), y, reduction="none"), idx)

The same plan/observe contract as `infobatch-run` (infobatch_runner/pruning/base.py), and the
same plans: a strategy built here from a name, its parameters and a seed plans exactly what the
runner's strategy plans when it observes the same losses. The batch sampler lives in the main
process (DataLoader workers only load samples); IndexedDataset adds each sample's index, and
the loss weight of a batch is looked up by index on the device (one gather, no Python loop).

Under torchrun every rank computes the same plan and takes an equal shard of it (like
DistributedSampler; `num_replicas`/`rank`, else read from torch.distributed); the losses each
rank observed are all-gathered once per epoch and replayed into every rank's strategy, so the
strategies stay identical.
"""

import copy
import os
import warnings
from collections.abc import Mapping
from typing import Callable

import torch
import torch.distributed as dist

from infobatch_runner.engine.distributed import Observations, shard
from infobatch_runner.integrations.batches import PrunedBatchSampler
from infobatch_runner.integrations.pruner_args import (default_device, make_strategy, resolve_world, resolved_params,
                                                       same_device)
from infobatch_runner.pruning import Plan, Strategy


class Pruner:
    """One strategy, its epoch and that epoch's plan, and the weighted loss.

    strategy: a registered name ("infobatch", "random_dynamic", ..., or one that another installed
    package registers: pruning/registry.py) with its parameters as keyword arguments, a prune config
    mapping (`name` + parameters), or a Strategy.
    num_samples: the dataset's length; epochs: the planned number of epochs (InfoBatch anneals
    over its last (1 - delta) of them); seed: the run seed (the strategy derives its own
    generator from it, as the runner does); device: where the strategy's state and plans live, by
    default the current accelerator (the losses' device: observing them is then device ops only),
    else the CPU. A CUDA generator plans differently from a CPU one, as in the runner.
    """

    def __init__(self, strategy="infobatch", num_samples: int | None = None, epochs: int | None = None, *,
                 seed: int = 0, device: torch.device | str | None = None, num_replicas: int | None = None,
                 rank: int | None = None, **params):
        device = default_device() if device is None else torch.device(device)
        self.strategy = make_strategy(strategy, num_samples, epochs, seed, device, params)
        # What the plans depend on besides the state itself: a state saved under other parameters
        # would go on with the wrong ones (load_state_dict refuses it).
        given = {k: v for k, v in dict(strategy).items() if k != "name"} if isinstance(strategy, Mapping) else {}
        self.params = {"epochs": self.strategy.epochs, **given, **params}
        if not isinstance(strategy, Strategy):  # every parameter, defaults filled in: what the plans depend on
            self.params = resolved_params(self.strategy.name, self.params)
        self.num_samples = self.strategy.num_samples
        self.epochs = self.strategy.epochs
        self.device = self.strategy.device
        self.world = resolve_world(num_replicas, rank)
        self._world_given = num_replicas is not None
        self.epoch = 0  # the epoch whose plan is current, or is planned on first use
        self.plan: Plan | None = None  # the whole epoch's plan, the same on every rank
        self.local: Plan | None = None  # this rank's shard of it
        self._weight_of: torch.Tensor | None = None  # (N,) loss weight of each index this epoch
        self._local_list: list[int] | None = None
        self._pending = Observations() if self.world.size > 1 else None
        # Set by a trainer integration (the Lightning callback): the epoch to plan, read whenever
        # the sampler is measured or iterated, so len() is right whenever the trainer asks.
        self.epoch_source: Callable[[], int] | None = None
        self._walked = False  # a batch sampler went through the whole current plan since set_epoch
        # Batches of the current epoch this rank has observed (trained), which a state saved
        # mid-epoch records: the sampler of the restored Pruner starts after them. Counted at observe,
        # not at the sampler, which a prefetching DataLoader runs ahead of the training.
        self.batches_done = 0
        self._resume_at = 0
        self._nonfinite: torch.Tensor | None = None  # (N,) samples whose loss was NaN or inf this epoch
        self._device_checked = False

    # -- the plan ------------------------------------------------------------------------------
    @property
    def schedule_epochs(self) -> int:
        """The epochs to train and to size the learning-rate schedule on: `epochs`, or fewer for the
        fewer-epochs baseline (short_schedule), whose later epochs plan nothing (a loop that goes on
        would find them empty, and a schedule over all `epochs` would stop halfway)."""
        return self.strategy.schedule_epochs or self.epochs

    def set_epoch(self, epoch: int) -> None:
        """Plan `epoch` now (a no-op when it is already planned): merges the previous epoch's
        observations first (under torchrun, a collective: every rank calls it)."""
        if isinstance(epoch, bool) or not isinstance(epoch, int) or not 0 <= epoch < self.epochs:
            raise ValueError(f"epoch must be an integer in [0, {self.epochs}) for a Pruner of epochs={self.epochs} "
                             f"(got {epoch!r})")
        self._walked = False  # an explicit epoch: the sampler does not move on by itself this time
        if self.plan is not None and epoch == self.epoch:
            return
        self._check_world()
        self.end_epoch()
        self._report_nonfinite()
        self._install(epoch, self.strategy.plan(epoch))
        self._check_ranks_agree()

    def _check_world(self) -> None:
        """A Pruner built before init_process_group plans for one process: every rank would train
        the whole plan."""
        initialised = dist.is_available() and dist.is_initialized()
        if initialised and not self._world_given and self.world.size == 1 and dist.get_world_size() > 1:
            raise RuntimeError(f"this Pruner was built before torch.distributed was initialised, so it plans for one "
                               f"process, while {dist.get_world_size()} ranks run; build it after "
                               "init_process_group, or pass num_replicas and rank")

    def _check_ranks_agree(self) -> None:
        """Under torchrun every rank must compute the same plan (same seed, same parameters, same
        observations): one small all-gather of the plan's fingerprint per epoch, read once."""
        if self.world.size == 1 or not (dist.is_available() and dist.is_initialized()):
            return
        mine = torch.stack([torch.tensor(self.epoch), torch.tensor(len(self.plan)), self.plan.indices.sum().cpu(),
                            (self.plan.weights.double().sum().cpu() * 1e6).round().long()]).to(self.plan.indices.device)
        every = [torch.empty_like(mine) for _ in range(self.world.size)]
        dist.all_gather(every, mine)
        prints = [tuple(int(v) for v in t.tolist()) for t in every]
        if len(set(prints)) > 1:
            raise RuntimeError(f"the ranks planned epoch {self.epoch} differently (length, index sum per rank: "
                               f"{[(p[1], p[2]) for p in prints]}); build every rank's Pruner with the same seed and "
                               "parameters")

    def next_epoch_if_walked(self) -> None:
        """For loops that never call set_epoch: once a batch sampler has gone through the whole
        current plan, the next len() or iter() plans the next epoch (forgetting set_epoch used to
        train epoch 0's plan, all of the data, every epoch). An explicit set_epoch() turns this off
        until the plan is walked again; so does a trainer integration's epoch_source."""
        if not self._walked or self.epoch_source is not None:
            return
        if self.epoch + 1 >= self.epochs:
            raise RuntimeError(f"the sampler was iterated for more epochs than the {self.epochs} this Pruner plans; "
                               f"build it with epochs= the number of epochs you train")
        self.set_epoch(self.epoch + 1)

    def current(self) -> Plan:
        """This rank's part of the current epoch's plan (planned on first use)."""
        if self.epoch_source is not None:
            self.set_epoch(int(self.epoch_source()))
        elif self.plan is None:
            self.set_epoch(self.epoch)
        return self.local

    def local_indices(self) -> list[int]:
        """This rank's plan as a Python list: one host copy per epoch, for the batch sampler."""
        local = self.current()
        if self._local_list is None:
            self._local_list = local.indices.cpu().tolist()
        return self._local_list

    def _install(self, epoch: int, plan: Plan) -> None:
        self.epoch, self.plan = epoch, plan
        self.batches_done = self._resume_at = 0
        self.local = shard(plan, self.world)
        self._weight_of = torch.zeros(self.num_samples, dtype=torch.float32, device=plan.weights.device)
        self._weight_of.index_copy_(0, plan.indices, plan.weights.float())
        self._local_list = None
        self._planned_cpu: torch.Tensor | None = None  # (N,) bool on the host, built on first use

    def batch_sampler(self, batch_size: int) -> PrunedBatchSampler:
        """A batch sampler over this pruner's plans, for DataLoader(batch_sampler=...)."""
        return PrunedBatchSampler(self, batch_size)

    # -- the loss ------------------------------------------------------------------------------
    def _indices(self, indices) -> torch.Tensor:
        """The batch's sample indices as int64 on the pruner's device, checked before any state
        changes: integers (float indices would be truncated), and, where they are on the CPU (a
        DataLoader's), within [0, num_samples) (on a GPU that check would cost a host sync)."""
        t = torch.as_tensor(indices)
        if t.is_floating_point() or t.is_complex() or t.dtype == torch.bool:
            raise TypeError(f"indices must be integers (got a {t.dtype} tensor)")
        if t.dim() != 1:
            raise ValueError(f"indices must be one-dimensional, one per sample (got shape {tuple(t.shape)})")
        if t.device.type == "cpu" and t.numel() and not 0 <= int(t.min()) <= int(t.max()) < self.num_samples:
            raise IndexError(f"indices must be in [0, {self.num_samples}) (got {int(t.min())} .. {int(t.max())})")
        return t.to(self.device, torch.long, non_blocking=True)  # no wait on a pinned (DataLoader pin_memory) batch

    def weights_for(self, indices: torch.Tensor) -> torch.Tensor:
        """The current plan's loss weights of these sample indices (float32, on the pruner's device).
        Indices on the CPU (a DataLoader's) must be in the epoch's plan: a sample outside it has no
        weight, and training it with weight 0 would silently drop it (a loader not driven by the
        pruner's batch sampler). On a GPU that check would cost a host sync per batch."""
        self.current()
        return self._weight_of.index_select(0, self._planned(indices))

    def _planned(self, indices) -> torch.Tensor:
        """_indices, and on the CPU the check that they are in the current plan."""
        t = torch.as_tensor(indices)
        idx = self._indices(t)
        if t.device.type == "cpu" and t.numel():
            if self._planned_cpu is None:  # once per epoch: the plan's membership, on the host
                self._planned_cpu = torch.zeros(self.num_samples, dtype=torch.bool)
                self._planned_cpu[self.plan.indices.cpu()] = True
            outside = t[~self._planned_cpu[t.long()]]
            if outside.numel():
                raise ValueError(f"indices {outside[:5].tolist()} are not in epoch {self.epoch}'s plan, where they "
                                 "would weigh 0: feed the DataLoader with pruner.batch_sampler(batch_size) (and call "
                                 "pruner.set_epoch(epoch) before each epoch)")
        return idx

    def observe(self, *, indices: torch.Tensor, losses: torch.Tensor) -> None:
        """Hand the batch's per-sample losses to the strategy (detached, float32); under torchrun
        they are kept on the device and merged at the epoch's end. Keyword-only: loss() takes
        (losses, indices), and the other order would score the wrong samples. A non-finite loss (NaN,
        inf: an fp16 overflow) leaves its sample's score as it was; the samples are named once, in
        a warning at the next set_epoch (no host sync per batch)."""
        _check_losses(losses)
        self._observe(self._indices(indices), losses)

    def _observe(self, idx: torch.Tensor, losses: torch.Tensor) -> None:
        """observe() with the indices already checked and on the pruner's device."""
        if losses.dim() != 1 or losses.shape[0] != idx.shape[0]:
            raise ValueError(f"observe() takes one loss per sample: got losses of shape {tuple(losses.shape)} for "
                             f"{idx.shape[0]} indices")
        if not self._device_checked:  # once: the losses stay where the model is
            self._device_checked = True
            if not same_device(losses.device, self.device):
                warnings.warn(f"the losses are on {losses.device} and this Pruner's state on {self.device}: every batch "
                              f"copies them across; build it with device={str(losses.device)!r}", stacklevel=3)
        self.batches_done += 1
        values = losses.detach().float().to(self.device)
        if self._nonfinite is None:
            self._nonfinite = torch.zeros(self.num_samples, dtype=torch.bool, device=self.device)
        self._nonfinite.index_copy_(0, idx, self._nonfinite.index_select(0, idx) | ~torch.isfinite(values))
        if self._pending is not None:
            self._pending.observe(idx, values)
        else:
            self.strategy.observe(idx, values)

    def _report_nonfinite(self) -> None:
        """Once per epoch (one host read): name the samples whose loss was not finite."""
        if self._nonfinite is None:
            return
        bad = self._nonfinite.nonzero().flatten().tolist()
        self._nonfinite = None
        if bad:
            shown = ", ".join(map(str, bad[:10])) + (", ..." if len(bad) > 10 else "")
            warnings.warn(f"{len(bad)} non-finite losses (NaN or inf) in epoch {self.epoch}, of samples {shown}: "
                          "left out of the scores, those samples keep the ones they had", stacklevel=3)

    def loss(self, losses: torch.Tensor, indices: torch.Tensor) -> torch.Tensor:
        """Observe the per-sample losses (reduction="none") and return mean(w * loss): the mean over
        the batch, not divided by the sum of the weights, which keeps the gradient unbiased. float32
        whatever the losses' dtype (bf16 and fp16 included)."""
        _check_losses(losses)
        t = torch.as_tensor(indices)
        if losses.dim() != 1 or t.dim() == 0 or losses.shape[0] != t.shape[0]:
            raise ValueError(f"loss() takes one loss per sample (reduction='none'): got losses of shape "
                             f"{tuple(losses.shape)} for indices of shape {tuple(t.shape)}")
        self.current()
        idx = self._planned(t)  # every check before any state changes, once per batch
        weights = self._weight_of.index_select(0, idx).to(losses.device)
        self._observe(idx, losses)
        return (weights * losses.float()).mean()

    def end_epoch(self) -> None:
        """Merge the epoch's observations of all ranks into every rank's strategy (torchrun only; a
        collective: every rank calls it). set_epoch() does it."""
        if self._pending is None or not self._pending.indices:
            return
        if self.world.size > 1 and not (dist.is_available() and dist.is_initialized()):
            raise RuntimeError(f"merging the observations of {self.world.size} replicas needs torch.distributed "
                               "initialised (init_process_group) on every rank")
        self._pending.merge(self.strategy, self.world)

    # -- state -------------------------------------------------------------------------------
    def state_dict(self) -> dict:
        """The strategy's whole state (its generator included), the epoch and its plan, and under
        torchrun this rank's observations not merged yet: mid-epoch, every rank saves its own state
        (as its own RNG state), and merging early would change what the epoch's end merges."""
        plan = None if self.plan is None else {"indices": self.plan.indices.cpu(), "weights": self.plan.weights.cpu()}
        pending = None
        if self._pending is not None and self._pending.indices:
            pending = {"indices": torch.cat(self._pending.indices).cpu(), "losses": torch.cat(self._pending.losses).cpu()}
        return {"name": self.strategy.name, "num_samples": self.num_samples, "epoch": self.epoch, "plan": plan,
                "params": dict(self.params), "batches_done": self.batches_done, "walked": self._walked,
                "strategy": self.strategy.state_dict(), "pending": pending, "rank": self.world.rank,
                "replicas": self.world.size}

    def load_state_dict(self, state: dict) -> None:
        """Go on from a state_dict(). The whole state is checked before any of it is installed: a
        state that does not fit this Pruner raises (TypeError for what is not a state at all,
        ValueError for one that does not fit) and leaves the Pruner as it was."""
        state = self._checked_state(state)
        before = copy.deepcopy(self.strategy.state_dict())
        try:
            self.strategy.load_state_dict(state["strategy"])
        except (KeyError, IndexError, TypeError, ValueError, RuntimeError, AttributeError) as exc:
            self.strategy.load_state_dict(before)  # what a partial load changed, put back
            raise ValueError(f"this state's strategy part is not a state of {self.strategy.name} over "
                             f"{self.num_samples} samples ({type(exc).__name__}: {exc}); pass what state_dict() "
                             "returned") from None
        if self._pending is not None:
            self._pending = Observations()
            if state.get("pending") is not None:
                self._pending.observe(state["pending"]["indices"].to(self.device), state["pending"]["losses"].to(self.device))
        self.epoch, self.plan, self.local, self._weight_of, self._local_list = state["epoch"], None, None, None, None
        if state["plan"] is not None:
            p = state["plan"]
            self._install(state["epoch"], Plan(p["indices"].to(self.device), p["weights"].to(self.device)))
            # mid-epoch: the sampler goes on after the batches already trained (states of earlier versions: 0)
            self.batches_done = self._resume_at = state.get("batches_done", 0)
            # a prefetching loader may have walked the plan already; what counts is what was trained
            self._walked = state.get("walked", False) and not self._resume_at

    def _checked_state(self, state) -> Mapping:
        """The state, every part of it checked against this Pruner; nothing is changed here."""
        if isinstance(state, (str, bytes, os.PathLike)):
            raise TypeError(f"load_state_dict takes the dict that state_dict() returned, not a path ({state!r}): "
                            "read the file first, e.g. pruner.load_state_dict(torch.load(path))")
        if not isinstance(state, Mapping):
            raise TypeError(f"load_state_dict takes the dict that state_dict() returned (got {type(state).__name__})")
        missing = [k for k in ("name", "num_samples", "epoch", "plan", "strategy") if k not in state]
        if missing:
            raise ValueError(f"this state lacks {', '.join(map(repr, missing))}: pass what state_dict() returned")
        if state["name"] != self.strategy.name or state["num_samples"] != self.num_samples:
            raise ValueError(f"this state is of {state['name']} over {state['num_samples']} samples, not of "
                             f"{self.strategy.name} over {self.num_samples}")
        saved = state.get("params")  # states of earlier versions carry none
        if saved is not None:
            saved, mine = resolved_params(self.strategy.name, saved), self.params
            differ = sorted(k for k in set(saved) | set(mine) if saved.get(k) != mine.get(k))
            if differ:
                what = ", ".join(f"{k}={saved.get(k)!r} (this Pruner: {mine.get(k)!r})" for k in differ)
                raise ValueError(f"this state was saved with other parameters: {what}; build the Pruner as it was")
        epoch = state["epoch"]
        if isinstance(epoch, bool) or not isinstance(epoch, int) or not 0 <= epoch < self.epochs:
            raise ValueError(f"this state's epoch {epoch!r} is not one of this Pruner's epochs [0, {self.epochs})")
        if not isinstance(state["strategy"], Mapping):
            raise ValueError(f"this state's strategy part is not a mapping (got {type(state['strategy']).__name__})")
        if state["plan"] is not None:
            self._check_indexed(state["plan"], "plan", "weights")
        if state.get("pending") is not None:
            self._check_indexed(state["pending"], "pending", "losses")
        replicas, rank = state.get("replicas", self.world.size), state.get("rank", self.world.rank)
        if state.get("pending") is not None and (replicas, rank) != (self.world.size, self.world.rank):
            raise ValueError(f"this state is rank {rank}'s of {replicas} replicas, saved mid-epoch with that rank's "
                             f"losses not merged yet; load it into rank {rank} of {replicas} (this Pruner: rank "
                             f"{self.world.rank} of {self.world.size})")
        return state

    def _check_indexed(self, part, what: str, values: str) -> None:
        """A state's plan or pending losses: `indices` (integers in [0, N)) and as many `values`."""
        if not isinstance(part, Mapping) or not all(isinstance(part.get(k), torch.Tensor) for k in ("indices", values)):
            raise ValueError(f"this state's {what} must hold tensors 'indices' and {values!r}")
        idx, val = part["indices"], part[values]
        if idx.dim() != 1 or val.shape != idx.shape or idx.is_floating_point() or idx.dtype == torch.bool:
            raise ValueError(f"this state's {what} must hold one-dimensional integer indices and as many {values} "
                             f"(got {idx.dtype} {tuple(idx.shape)} and {tuple(val.shape)})")
        if idx.numel() and not 0 <= int(idx.min()) <= int(idx.max()) < self.num_samples:
            raise ValueError(f"this state's {what} holds indices outside [0, {self.num_samples}) "
                             f"({int(idx.min())} .. {int(idx.max())})")

    def __repr__(self) -> str:
        return (f"Pruner({self.strategy.name}, num_samples={self.num_samples}, epochs={self.epochs}, "
                f"epoch={self.epoch}, replicas={self.world.size}, rank={self.world.rank})")


def _check_losses(losses) -> None:
    if not isinstance(losses, torch.Tensor):
        raise TypeError(f"losses must be a tensor, one loss per sample (reduction='none'), not a {type(losses).__name__}")


__all__ = ["Pruner"]
