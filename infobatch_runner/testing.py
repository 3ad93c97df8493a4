"""`check_strategy(cls, **params)`: the contract of docs/strategies.md, in one call, for any
Strategy subclass: ours (tests/test_strategy_contract.py) and the one you write in your own package.

    from infobatch_runner.testing import check_strategy
    print(check_strategy(MyStrategy, ratio=0.3))

It runs the class at a small size on the CPU (num_samples=600, epochs=6, batches of 64, losses that
depend on the sample and the epoch) and raises one AssertionError naming the broken property and
the epoch, or returns a ContractReport. The properties, in the order they are checked:

- plans valid: int64 indices in [0, N), each once per epoch; float32 weights, finite and > 0; an
  empty plan only after a short schedule's last epoch.
- plan fixed at set_epoch: the plan returned for an epoch (its length sizes the schedule, the
  sampler and the progress bar) does not change while the epoch's losses are observed.
- same seed, same plans; another seed, other plans.
- global RNG untouched: torch's, numpy's and Python's generators are as they were.
- state round trip: a state_dict() taken mid-run, through torch.save and torch.load, continues a
  strategy built from another seed to the same plans and the same generator state.
- no host read in observe: counted during observe, none of .item(), .tolist(), .numpy(), .cpu(),
  bool()/int()/float() of a tensor, .nonzero(), masked_select or boolean-mask indexing; each is a
  device sync per batch on a GPU.
- low-precision losses: bf16 and fp16 losses plan as their float32 values, none kept in half.
- non-finite losses ignored: a NaN or inf loss leaves its sample's state as it was.
- ranks merge: two gloo ranks (forked processes), each training its shard of the plan and merging
  the epoch's losses as the runner does under torchrun (engine/distributed.py), plan and end in
  the state of one process that observed every batch.
- target_saving realised or refused (when the class takes one): 30, 50 and 70% are each either
  refused by check_budget before training (a UserError, one sentence) or realised to half a sample
  per epoch (half an epoch's samples for a strategy that trains whole epochs: short_schedule).
"""

import collections
import io
import math
import os
import random
import tempfile
import traceback
import warnings
from dataclasses import dataclass, field

import numpy as np
import torch
import torch.distributed as dist
import torch.multiprocessing as mp
from torch.overrides import TorchFunctionMode

from infobatch_runner.errors import UserError
from infobatch_runner.pruning import Plan, Strategy, check_budget, parameters
from infobatch_runner.pruning.registry import OPTION_NAME

PROPERTIES = ("plans valid", "plan fixed at set_epoch", "same seed, same plans", "another seed, other plans",
              "global RNG untouched", "state round trip", "no host read in observe", "low-precision losses",
              "non-finite losses ignored", "ranks merge", "target_saving realised or refused")
TARGETS = (0.3, 0.5, 0.7)
HOST_READS = {"item", "tolist", "numpy", "cpu", "__bool__", "__int__", "__float__", "__index__", "nonzero",
              "masked_select"}
RANKS_TIMEOUT_S = 300


@dataclass(frozen=True)
class ContractReport:
    """What check_strategy found: every property held (or was not applicable, with why)."""

    strategy: str
    num_samples: int
    epochs: int
    params: dict
    held: tuple[str, ...]
    not_checked: dict[str, str] = field(default_factory=dict)  # property -> why
    saved: float = 0.0  # the share of samples the run with `params` did not train
    targets: dict[float, str] = field(default_factory=dict)  # target -> "saved 0.3001" or "refused: ..."

    def __str__(self) -> str:
        setting = ", ".join(f"{k}={v!r}" for k, v in self.params.items()) or "defaults"
        lines = [f"{self.strategy} ({setting}): {len(self.held)} contract properties hold over {self.epochs} epochs "
                 f"of {self.num_samples} samples; it saved {self.saved:.1%} of the samples"]
        lines += [f"  not checked, {name}: {why}" for name, why in self.not_checked.items()]
        lines += [f"  target_saving={t:g}: {outcome}" for t, outcome in self.targets.items()]
        return "\n".join(lines)


def check_strategy(cls: type, *, num_samples: int = 600, epochs: int = 6, batch_size: int = 64,
                   **params) -> ContractReport:
    """Check a Strategy subclass, built as cls(num_samples, epochs, seed, "cpu", **params), against
    every property of the contract (this module's docstring); AssertionError on the first broken one."""
    if not (isinstance(cls, type) and issubclass(cls, Strategy)):
        raise AssertionError(f"check_strategy takes a subclass of infobatch_runner.pruning.Strategy, not {cls!r}")
    if not (isinstance(getattr(cls, "name", None), str) and OPTION_NAME.fullmatch(cls.name)):
        raise AssertionError(f"{cls.__qualname__} needs a class attribute `name` of letters, digits and underscores "
                             f"(its prune=<name>), not {getattr(cls, 'name', None)!r}")
    return _Checker(cls, num_samples, epochs, batch_size, params).run()


def losses_for(indices: torch.Tensor, epoch: int) -> torch.Tensor:
    """A stand-in for per-sample losses, a function of the sample and the epoch: some samples easy,
    some hard, changing from epoch to epoch."""
    return ((indices.float() * 0.618 + 0.31 * epoch).remainder(1.0) * 3 + 0.05).float()


class _HostReads(TorchFunctionMode):
    """Counts the calls that read a tensor's values back to the host."""

    def __init__(self):
        super().__init__()
        self.reads = collections.Counter()

    def __torch_function__(self, func, types, args=(), kwargs=None):
        name = getattr(func, "__name__", "")
        if name in HOST_READS:
            self.reads[name] += 1
        elif name == "__getitem__" and any(isinstance(a, torch.Tensor) and a.dtype == torch.bool for a in
                                           _flat(args[1:])):
            self.reads["boolean-mask indexing"] += 1
        return func(*args, **(kwargs or {}))


def _flat(items):
    for item in items:
        if isinstance(item, (tuple, list)):
            yield from _flat(item)
        else:
            yield item


def same(a, b) -> bool:
    """Equal states: tensors equal in shape, dtype and values; containers key by key."""
    if isinstance(a, torch.Tensor):
        return isinstance(b, torch.Tensor) and a.shape == b.shape and a.dtype == b.dtype and torch.equal(a, b)
    if isinstance(a, dict):
        return isinstance(b, dict) and a.keys() == b.keys() and all(same(a[k], b[k]) for k in a)
    if isinstance(a, (list, tuple)):
        return isinstance(b, (list, tuple)) and len(a) == len(b) and all(same(x, y) for x, y in zip(a, b))
    if isinstance(a, np.ndarray):
        return isinstance(b, np.ndarray) and np.array_equal(a, b)
    return a == b


def same_plan(a: Plan, b: Plan) -> bool:
    return torch.equal(a.indices, b.indices) and torch.equal(a.weights, b.weights)


class _Checker:
    def __init__(self, cls, num_samples, epochs, batch_size, params):
        self.cls, self.n, self.epochs, self.batch = cls, num_samples, epochs, batch_size
        self.params = dict(params)
        self.held, self.not_checked, self.targets, self.saved = [], {}, {}, 0.0

    def fail(self, prop: str, epoch, detail: str):
        when = f"epoch {epoch}" if isinstance(epoch, int) else epoch
        raise AssertionError(f"{self.cls.__qualname__} breaks the contract, {prop}: {when}: {detail}")

    def make(self, seed: int, **extra) -> Strategy:
        s = self.cls(self.n, self.epochs, seed, "cpu", **{**self.params, **extra})
        if s.scoring() is not None:  # a static strategy: the runner's scoring phase would hand it scores
            s.set_scores((torch.arange(self.n) * 0.618).remainder(1.0))
        return s

    def feed(self, s: Strategy, plan: Plan, epoch: int, losses=losses_for) -> None:
        for start in range(0, len(plan), self.batch):
            idx = plan.indices[start : start + self.batch]
            s.observe(idx, losses(idx, epoch))

    def epoch(self, s: Strategy, e: int) -> Plan:
        plan = s.plan(e)
        self.feed(s, plan, e)
        return plan

    def run(self) -> ContractReport:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", UserWarning)  # "prunes no epoch" is the runner's to say
            for check in (self.plans_valid_and_fixed, self.same_seed, self.rng_untouched, self.state_round_trip,
                          self.no_host_read, self.low_precision, self.non_finite, self.ranks_merge, self.target):
                check()
        return ContractReport(self.cls.name, self.n, self.epochs, self.params, tuple(self.held), self.not_checked,
                              self.saved, self.targets)

    # ------------------------------------------------------------------------------------------

    def plans_valid_and_fixed(self):
        s, trained = self.make(0), 0
        for e in range(self.epochs):
            plan = s.plan(e)
            self.valid(plan, s, e)
            at_set_epoch = (len(plan), plan.indices.clone(), plan.weights.clone())
            self.feed(s, plan, e)
            if len(plan) != at_set_epoch[0]:
                self.fail("plan fixed at set_epoch", e, f"the plan had {at_set_epoch[0]} samples at set_epoch and "
                          f"{len(plan)} after the epoch's losses were observed; the schedule and the sampler were "
                          "sized by the first")
            if not (torch.equal(plan.indices, at_set_epoch[1]) and torch.equal(plan.weights, at_set_epoch[2])):
                self.fail("plan fixed at set_epoch", e, "the plan's indices or weights changed while the epoch's "
                          "losses were observed")
            trained += len(plan)
        self.saved = 1 - trained / (self.epochs * self.n)
        self.held += ["plans valid", "plan fixed at set_epoch"]

    def valid(self, plan, s: Strategy, e: int):
        prop = "plans valid"
        if not isinstance(plan, Plan):
            self.fail(prop, e, f"plan() returned {type(plan).__name__}, not a Plan")
        i, w = plan.indices, plan.weights
        if not (isinstance(i, torch.Tensor) and i.dtype == torch.int64 and i.dim() == 1):
            self.fail(prop, e, "the indices are not a 1-D int64 tensor")
        if not (isinstance(w, torch.Tensor) and w.dtype == torch.float32 and w.shape == i.shape):
            self.fail(prop, e, "the weights are not a float32 tensor of the indices' shape")
        if i.device != s.device or w.device != s.device:
            self.fail(prop, e, f"the plan is on {i.device}/{w.device}, the strategy on {s.device}")
        if len(plan) == 0:
            if s.schedule_epochs is None or e < s.schedule_epochs:
                self.fail(prop, e, "the plan trains no sample")
            return
        outside = i[(i < 0) | (i >= self.n)]
        if outside.numel():
            self.fail(prop, e, f"index {int(outside[0])} is outside [0, {self.n})")
        if i.unique().numel() != len(plan):
            values, counts = i.unique(return_counts=True)
            self.fail(prop, e, f"index {int(values[counts > 1][0])} is planned more than once")
        bad = ~(torch.isfinite(w) & (w > 0))
        if bad.any():
            self.fail(prop, e, f"weight {float(w[bad][0])} (of index {int(i[bad][0])}) is not finite and positive")

    def same_seed(self):
        a, b, c = self.make(0), self.make(0), self.make(1)
        differs = False
        for e in range(self.epochs):
            pa, pb, pc = self.epoch(a, e), self.epoch(b, e), self.epoch(c, e)
            if not same_plan(pa, pb):
                self.fail("same seed, same plans", e, "two strategies built with seed 0 and fed the same losses plan "
                          "differently")
            differs |= len(pa) > 0 and not (len(pa) == len(pc) and same_plan(pa, pc))
        if not differs:
            self.fail("another seed, other plans", "every epoch", "seeds 0 and 1 give the same plans: the strategy's "
                      "generator must come from the run's seed (Strategy.__init__ seeds self.gen)")
        self.held += ["same seed, same plans", "another seed, other plans"]

    def rng_untouched(self):
        torch.manual_seed(7)
        np.random.seed(7)
        random.seed(7)
        states = (torch.get_rng_state, lambda: np.random.get_state()[1].copy(), random.getstate)
        before = [state() for state in states]
        s = self.make(0)
        for e in range(self.epochs):
            self.epoch(s, e)
            for name, then, state in zip(("torch", "numpy", "Python"), before, states):
                if not same(then, state()):
                    self.fail("global RNG untouched", e, f"{name}'s global generator moved: draw from the strategy's "
                              "own (self.gen)")
        self.held.append("global RNG untouched")

    def state_round_trip(self):
        a, half = self.make(0), self.epochs // 2
        for e in range(half):
            self.epoch(a, e)
        buffer = io.BytesIO()
        torch.save(a.state_dict(), buffer)
        buffer.seek(0)
        b = self.make(123)
        b.load_state_dict(torch.load(buffer, weights_only=False))
        for e in range(half, self.epochs):
            if not same_plan(self.epoch(a, e), self.epoch(b, e)):
                self.fail("state round trip", e, f"a strategy restored from the state_dict() taken after epoch "
                          f"{half - 1} plans differently from the one that went on: the state must hold everything "
                          "the plans depend on, the generator included")
        if not torch.equal(a.gen.get_state(), b.gen.get_state()):
            self.fail("state round trip", self.epochs - 1, "the restored strategy's generator ends in another state")
        self.held.append("state round trip")

    def no_host_read(self):
        s = self.make(0)
        for e in range(min(2, self.epochs)):
            plan = s.plan(e)
            for start in range(0, len(plan), self.batch):
                idx = plan.indices[start : start + self.batch]
                losses = losses_for(idx, e)
                with _HostReads() as mode:
                    s.observe(idx, losses)
                if mode.reads:
                    reads = ", ".join(f"{name} x{count}" for name, count in sorted(mode.reads.items()))
                    self.fail("no host read in observe", e, f"observe read values back to the host ({reads}); on a "
                              "GPU each is a sync in every training step: keep observe to device ops")
        self.held.append("no host read in observe")

    def low_precision(self):
        for dtype in (torch.bfloat16, torch.float16):
            low, high = self.make(0), self.make(0)
            for e in range(min(3, self.epochs)):
                a, b = low.plan(e), high.plan(e)
                if not same_plan(a, b):
                    self.fail("low-precision losses", e, f"losses given in {dtype} plan differently from the same "
                              "values in float32: cast them (losses.float()) before use")
                self.feed(low, a, e, lambda i, ep: losses_for(i, ep).to(dtype))
                self.feed(high, b, e, lambda i, ep: losses_for(i, ep).to(dtype).float())
            half = [k for k, v in _tensors(low.state_dict()) if v.dtype in (torch.bfloat16, torch.float16)]
            if half:
                self.fail("low-precision losses", "its state", f"{half[0]} is kept in half precision")
        self.held.append("low-precision losses")

    def non_finite(self):
        with_bad, without = self.make(0), self.make(0)
        for e in range(min(3, self.epochs) + 1):
            a, b = with_bad.plan(e), without.plan(e)
            if not same_plan(a, b):
                self.fail("non-finite losses ignored", e, "observing NaN or inf for some samples plans differently "
                          "from not observing them: leave those samples' state as it was")
            if e == min(3, self.epochs):
                break
            for start in range(0, len(a), self.batch):
                idx = a.indices[start : start + self.batch]
                losses = losses_for(idx, e)
                bad = idx % 7 == e
                with_bad.observe(idx, torch.where(bad, torch.tensor([math.nan, math.inf])[idx % 2], losses))
                without.observe(idx[~bad], losses[~bad])
        self.held.append("non-finite losses ignored")

    def ranks_merge(self):
        if not dist.is_available() or "fork" not in mp.get_all_start_methods():
            self.not_checked["ranks merge"] = "torch.distributed (gloo) or fork is not available here"
            return
        with tempfile.TemporaryDirectory() as folder:
            context = mp.get_context("fork")
            ranks = [context.Process(target=self.rank_main, args=(rank, folder)) for rank in (0, 1)]
            for process in ranks:
                process.start()
            for process in ranks:
                process.join(RANKS_TIMEOUT_S)
            for rank, process in enumerate(ranks):
                if process.is_alive():
                    for p in ranks:
                        p.kill()
                    self.fail("ranks merge", "two gloo ranks", f"rank {rank} did not finish in {RANKS_TIMEOUT_S} s")
                if process.exitcode != 0:
                    error = os.path.join(folder, f"rank{rank}.err")
                    why = open(error).read().strip().splitlines()[-1] if os.path.exists(error) else \
                        f"exit code {process.exitcode}"
                    self.fail("ranks merge", "two gloo ranks", f"rank {rank} failed: {why}")
            results = [torch.load(os.path.join(folder, f"rank{r}.pt"), weights_only=False) for r in (0, 1)]
        single = self.make(0)
        for e in range(self.epochs):
            plan = single.plan(e)
            for rank, result in enumerate(results):
                if not same_plan(plan, result["plans"][e]):
                    self.fail("ranks merge", e, f"rank {rank} of two, each training its shard and merging the epoch's "
                              "losses once (in rank order, each sample once), plans differently from one process that "
                              "observed every batch: observe must not depend on how the losses are batched")
            self.feed(single, plan, e)
        for rank, result in enumerate(results):
            if not same(result["state"], single.state_dict()):
                self.fail("ranks merge", "after the last epoch", f"rank {rank}'s state differs from one process's")
        self.held.append("ranks merge")

    def rank_main(self, rank: int, folder: str):
        """One of two gloo ranks (a forked process): the runner's sharding and merging, results to a file."""
        from infobatch_runner.engine.distributed import Observations, World, shard

        try:
            torch.set_num_threads(1)
            dist.init_process_group("gloo", init_method=f"file://{os.path.join(folder, 'store')}", rank=rank,
                                    world_size=2)
            world, s, observations, plans = World(rank, 2, rank), self.make(0), Observations(), []
            for e in range(self.epochs):
                plan = s.plan(e)
                plans.append(plan)
                mine = shard(plan, world)
                for start in range(0, len(mine), self.batch):
                    idx = mine.indices[start : start + self.batch]
                    observations.observe(idx, losses_for(idx, e))
                observations.merge(s, world)
            torch.save({"plans": plans, "state": s.state_dict()}, os.path.join(folder, f"rank{rank}.pt"))
            dist.destroy_process_group()
        except BaseException:
            with open(os.path.join(folder, f"rank{rank}.err"), "w") as out:
                out.write(traceback.format_exc())
            os._exit(1)

    def target(self):
        prop = "target_saving realised or refused"
        if "target_saving" not in parameters(self.cls):
            self.not_checked[prop] = "it takes no target_saving"
            return
        if "target_saving" in self.cls.ignored_params({"target_saving": 0.5}):
            self.not_checked[prop] = "it ignores target_saving"
            return
        for target in TARGETS:
            try:
                s = self.make(0, target_saving=target)
                check_budget(s)
            except UserError as e:
                self.targets[target] = f"refused before training: {e}"
                continue
            draws, trained = torch.Generator().manual_seed(3), 0
            for e in range(self.epochs):
                plan = s.plan(e)
                trained += len(plan)
                s.observe(plan.indices, torch.empty(len(plan)).exponential_(generator=draws))
            skipped, asked = self.epochs * self.n - trained, target * self.epochs * self.n
            whole_epochs = s.schedule_epochs is not None  # it trains whole epochs: half an epoch's samples
            allowed = 0.5 * self.n if whole_epochs else 0.5 * self.epochs
            if abs(skipped - asked) > allowed + 1e-9:
                unit = "half an epoch" if whole_epochs else "half a sample per epoch"
                self.fail(prop, "the whole run", f"target_saving={target:g} saved {skipped} of "
                          f"{self.epochs * self.n} samples ({skipped / (self.epochs * self.n):.4f}), more than {unit} "
                          f"from {asked:g}, and check_budget did not refuse it")
            self.targets[target] = f"saved {skipped / (self.epochs * self.n):.4f}"
        self.held.append(prop)


def _tensors(state, prefix=""):
    """(key path, tensor) for every tensor of a state, nested containers included."""
    if isinstance(state, torch.Tensor):
        yield prefix or "state", state
    elif isinstance(state, dict):
        for k, v in state.items():
            yield from _tensors(v, f"{prefix}.{k}" if prefix else str(k))
    elif isinstance(state, (list, tuple)):
        for k, v in enumerate(state):
            yield from _tensors(v, f"{prefix}[{k}]")
