"""A spy on every Pruner, for the tests of the library and its integrations: each new plan, and each
loss() call with its losses and result, checked afterwards against the runner's own strategy."""

import torch

from infobatch_runner.engine.distributed import first_occurrences
from infobatch_runner.integrations.pruner import Pruner
from infobatch_runner.pruning import build_strategy


class Recorder:
    """Spies on every Pruner: each new plan, and each loss() call with its losses and result."""

    def __init__(self, monkeypatch):
        """monkeypatch: pytest's fixture, or anything with its setattr(target, name, value) (a
        process the test launches passes `Patch`)."""
        self.plans: list[tuple[int, torch.Tensor, torch.Tensor]] = []
        self.batches: list[list[tuple[torch.Tensor, torch.Tensor, torch.Tensor]]] = []
        set_epoch, loss = Pruner.set_epoch, Pruner.loss

        def spy_set_epoch(pruner, epoch):
            before = pruner.plan
            set_epoch(pruner, epoch)
            if pruner.plan is not before:
                self.plans.append((epoch, pruner.plan.indices.clone(), pruner.plan.weights.clone()))
                self.batches.append([])

        def spy_loss(pruner, losses, indices):
            out = loss(pruner, losses, indices)
            if not self.batches:  # a restored epoch: planned before the spy, its batches go on here
                self.batches.append([])
            self.batches[-1].append((torch.as_tensor(indices).clone(), losses.detach().clone(), out.detach().clone()))
            return out

        monkeypatch.setattr(Pruner, "set_epoch", spy_set_epoch)
        monkeypatch.setattr(Pruner, "loss", spy_loss)

    def check_against_runner(self, prune_cfg, num_samples, epochs, seed):
        """Replay the recorded losses into a fresh runner strategy: it must plan every epoch exactly as
        the library did, and each returned loss must be mean(w * loss) with the plan's weights."""
        assert [e for e, *_ in self.plans] == list(range(epochs))
        runner = build_strategy(prune_cfg, num_samples, epochs, seed)
        for (epoch, indices, weights), batches in zip(self.plans, self.batches):
            plan = runner.plan(epoch)
            assert torch.equal(plan.indices, indices) and torch.equal(plan.weights, weights), f"epoch {epoch}"
            weight_of = dict(zip(indices.tolist(), weights.tolist()))
            for idx, losses, out in batches:
                w = torch.tensor([weight_of[i] for i in idx.tolist()])
                assert torch.equal(out, (w * losses.float()).mean()), "mean(w * loss), not divided by sum(w)"
                runner.observe(idx, losses.float())

    def record(self) -> dict:
        return {"plans": self.plans, "batches": self.batches}


class Patch:
    """monkeypatch.setattr for a process without pytest: the patch lasts as long as the process."""

    setattr = staticmethod(setattr)


def check_ranks_against_runner(records: list[dict], prune_cfg, num_samples, epochs, seed):
    """Two or more ranks' records: one plan on every rank, and the runner's strategy, observing each
    epoch's losses of all ranks as the pruner merges them (rank order, each index once), plans them."""
    plans = [r["plans"] for r in records]
    assert all(len(p) == epochs for p in plans) and [e for e, *_ in plans[0]] == list(range(epochs))
    runner = build_strategy(prune_cfg, num_samples, epochs, seed)
    for e in range(epochs):
        plan = runner.plan(e)
        for p in plans:
            assert torch.equal(plan.indices, p[e][1]) and torch.equal(plan.weights, p[e][2]), f"epoch {e}"
        seen = [b for r in records for b in r["batches"][e]]
        idx = torch.cat([i for i, _, _ in seen]).long()
        losses = torch.cat([l.float() for _, l, _ in seen])
        assert set(idx.tolist()) == set(plan.indices.tolist()), f"epoch {e}: the ranks trained the plan, all of it"
        runner.observe(*first_occurrences(idx, losses, num_samples))
