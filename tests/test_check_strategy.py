"""infobatch_runner.testing.check_strategy, the public contract checker: the worked example passes
it, and a copy of the example with one property broken fails with a sentence naming that property
(and the epoch). Our own strategies go through it in test_strategy_contract.py."""

import re
import textwrap

import pytest
import torch

from conftest import EXAMPLE
from infobatch_runner.pruning import Plan, Strategy
from infobatch_runner.testing import PROPERTIES, check_strategy
from loss_proportional import LossProportional  # examples/loss_proportional (conftest puts it on sys.path)


def test_the_example_keeps_the_contract():
    report = check_strategy(LossProportional)
    assert report.held == PROPERTIES and not report.not_checked
    assert report.targets == {0.3: "saved 0.3000", 0.5: "saved 0.5000", 0.7: "saved 0.7000"}
    assert str(report).startswith("loss_proportional (defaults): 11 contract properties hold over 6 epochs of 600 "
                                  "samples; it saved 41.7% of the samples")  # 5 pruned epochs of 6 keep half


class OutOfRange(LossProportional):
    def plan(self, epoch):
        plan = super().plan(epoch)
        if epoch == 2:
            plan.indices[0] = self.num_samples
        return plan


class PlannedTwice(LossProportional):
    def plan(self, epoch):
        plan = super().plan(epoch)
        return Plan(torch.cat([plan.indices, plan.indices[:1]]), torch.cat([plan.weights, plan.weights[:1]]))


class LengthChangesAfterSetEpoch(LossProportional):
    """Keeps its plan and drops a sample from it once the epoch's first losses arrive."""

    def plan(self, epoch):
        self.current = super().plan(epoch)
        return self.current

    def observe(self, indices, losses):
        super().observe(indices, losses)
        if len(self.current) == self.num_samples:
            self.current.indices, self.current.weights = self.current.indices[:-1], self.current.weights[:-1]


class ReadsBackInObserve(LossProportional):
    def observe(self, indices, losses):
        if bool(torch.isfinite(losses).all()):  # a device sync per batch on a GPU
            super().observe(indices, losses)
        else:
            super().observe(indices, losses)


class ReadsAnItemInObserve(LossProportional):
    def observe(self, indices, losses):
        self.largest = max(getattr(self, "largest", 0.0), losses.float().max().item())
        super().observe(indices, losses)


class ForgetsTheGenerator(LossProportional):
    def state_dict(self):
        return {"loss": self.loss.clone()}

    def load_state_dict(self, state):
        self.loss.copy_(state["loss"])


class DecaysPerCall(LossProportional):
    """Ages every remembered loss once per observe call: the state depends on how the losses were
    batched, so ranks that merge once per epoch drift from one process that observes every batch."""

    def observe(self, indices, losses):
        self.loss.mul_(0.9)
        super().observe(indices, losses)


class IgnoresTheSeed(LossProportional):
    def __init__(self, num_samples, epochs, seed, device="cpu", **params):
        super().__init__(num_samples, epochs, 0, device, **params)


class ReseedsTheGlobalGenerator(LossProportional):
    def plan(self, epoch):
        torch.manual_seed(epoch)  # "for determinism": every later draw of the training moves with it
        return super().plan(epoch)


class KeepsNonFiniteLosses(LossProportional):
    def observe(self, indices, losses):
        self.loss.index_copy_(0, indices, losses.float())


class KeepsHalfPrecision(LossProportional):
    def observe(self, indices, losses):
        self.last = losses.detach()  # bf16 under autocast
        super().observe(indices, losses)

    def state_dict(self):
        return {**super().state_dict(), "last": self.last}


class MissesItsTarget(LossProportional):
    def kept_budget(self):
        return super().kept_budget() + 2


BROKEN = [
    (OutOfRange, "plans valid", r"epoch 2: index 600 is outside \[0, 600\)"),
    (PlannedTwice, "plans valid", r"epoch 0: index \d+ is planned more than once"),
    (LengthChangesAfterSetEpoch, "plan fixed at set_epoch", "epoch 0: the plan had 600 samples at set_epoch and 599"),
    (ReadsBackInObserve, "no host read in observe", r"epoch 0: observe read values back to the host \(__bool__ x1\)"),
    (ReadsAnItemInObserve, "no host read in observe", r"epoch 0: .*\(item x1\)"),
    (ForgetsTheGenerator, "state round trip", "epoch 3: a strategy restored from the state_dict"),
    (DecaysPerCall, "ranks merge", "epoch 1: rank 0 of two"),
    (IgnoresTheSeed, "another seed, other plans", "every epoch: seeds 0 and 1 give the same plans"),
    (ReseedsTheGlobalGenerator, "global RNG untouched", "epoch 0: torch's global generator moved"),
    (KeepsNonFiniteLosses, "non-finite losses ignored", "epoch 1: observing NaN or inf"),
    (KeepsHalfPrecision, "low-precision losses", "its state: last is kept in half precision"),
    (MissesItsTarget, "target_saving realised or refused", r"the whole run: target_saving=0.3 saved 1070 of 3600"),
]


@pytest.mark.parametrize("broken,prop,detail", BROKEN, ids=[b[0].__name__ for b in BROKEN])
def test_a_copy_with_one_property_broken_fails_naming_it(broken, prop, detail):
    with pytest.raises(AssertionError) as failure:
        check_strategy(broken)
    message = str(failure.value)
    assert message.startswith(f"{broken.__qualname__} breaks the contract, {prop}: "), message
    assert re.search(detail, message), message
    assert "\n" not in message, "one sentence"


def test_it_takes_strategy_classes_with_an_option_name():
    with pytest.raises(AssertionError, match="takes a subclass of infobatch_runner.pruning.Strategy"):
        check_strategy(LossProportional(10, 2, 0))

    class Unnamed(Strategy):
        pass

    with pytest.raises(AssertionError, match="needs a class attribute `name`"):
        check_strategy(Unnamed)


def test_parameters_reach_the_class_and_the_report():
    report = check_strategy(LossProportional, num_samples=300, epochs=4, ratio=0.8)
    assert (report.num_samples, report.epochs, report.params) == (300, 4, {"ratio": 0.8})
    assert report.saved == pytest.approx(3 * 240 / (4 * 300))


def test_a_strategy_without_delta_that_prunes_no_epoch_is_told_so_in_its_own_terms():
    from infobatch_runner.pruning import check_budget

    with pytest.warns(UserWarning, match=r"^1 epoch\(s\) leave it no epoch to prune: loss_proportional trains all data "
                                         r"every epoch; train more epochs$"):
        check_budget(LossProportional(100, 1, 0))


def test_the_docs_example_runs_and_prints_the_report(capsys):
    page = (EXAMPLE.parents[1] / "docs" / "your-own-strategy.md").read_text()
    block = re.search(r"```python\n(.*?)```", page.split("<!-- check-strategy-example -->", 1)[1], re.S).group(1)
    exec(compile(textwrap.dedent(block), "check-strategy-example", "exec"), {})
    assert capsys.readouterr().out.startswith("loss_proportional (ratio=0.3): 11 contract properties hold")
