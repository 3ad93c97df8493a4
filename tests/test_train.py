"""The training loop in-process, on tiny synthetic data: what a run must count, for every strategy."""

import csv
import json

import pytest

from conftest import TINY
from infobatch_runner.config.validate import validate
from infobatch_runner.engine.train import closing_line, train
from infobatch_runner.pruning import STRATEGIES
from infobatch_runner.results.records import EPOCH_KEYS

SUMMARY_FIELDS = [
    "samples_trained", "samples_scoring", "saving_samples", "time_train_s", "time_scoring_s", "time_strategy_s",
    "time_eval_s", "time_cost_s", "saving_wall", "final/test_acc", "best/test_acc", "strategy", "ratio", "dataset",
    "model", "seed", "device", "precision", "time_checkpoint_s", "num_train", "num_val", "final/val_acc",
    "best/val_acc",
]


SCORED = ("el2n", "grand", "forgetting")


@pytest.fixture(scope="module")
def runs(tmp_path_factory):
    from hydra import compose, initialize_config_module

    out = {}
    for name in sorted(STRATEGIES):
        run_dir = tmp_path_factory.mktemp(name)
        overrides = TINY + [f"prune={name}"]
        if name in SCORED:
            overrides.append(f"prune.cache_dir={run_dir / 'cache'}")
        with initialize_config_module(version_base="1.3", config_module="infobatch_runner.conf"):
            cfg = compose(config_name="config", overrides=overrides)
        validate(cfg)
        out[name] = (run_dir, train(cfg, run_dir), cfg)
    return out


@pytest.mark.parametrize("name", sorted(STRATEGIES))
def test_summary_fields_are_filled(runs, name):
    run_dir, summary, _ = runs[name]
    assert json.loads((run_dir / "summary.json").read_text()) == summary
    for key in SUMMARY_FIELDS:
        assert key in summary, key
    assert summary["strategy"] == name and summary["dataset"] == "synthetic" and summary["precision"] == "fp32"
    assert summary["time_train_s"] > 0 and summary["time_eval_s"] > 0
    assert 0 < summary["time_strategy_s"] < summary["time_train_s"]
    assert summary["time_cost_s"] == pytest.approx(summary["time_train_s"] + summary["time_scoring_s"])
    assert 0 <= summary["final/test_acc"] <= summary["best/test_acc"] <= 1
    assert closing_line(summary).startswith(name)


@pytest.mark.parametrize("name", sorted(STRATEGIES))
def test_metrics_rows_and_sample_counts_agree(runs, name):
    run_dir, summary, cfg = runs[name]
    with open(run_dir / "metrics.csv") as f:
        rows = list(csv.DictReader(f))
    assert len(rows) == cfg.trainer.epochs and tuple(rows[0]) == EPOCH_KEYS
    n = cfg.dataset.num_train
    trained = sum(round(float(r["train/kept_fraction"]) * n) for r in rows)
    assert trained == summary["samples_trained"]
    spent = trained + summary["samples_scoring"]
    assert summary["saving_samples"] == pytest.approx(1 - spent / (cfg.trainer.epochs * n))
    assert float(rows[-1]["test/acc"]) == summary["final/test_acc"]
    assert all(r["val/acc"] == r["val/loss"] == "nan" for r in rows), "no validation split by default"
    assert summary["final/val_acc"] is None and summary["best/val_acc"] is None and summary["num_val"] == 0
    assert summary["time_train_s"] == pytest.approx(sum(float(r["train/epoch_time_s"]) for r in rows))


@pytest.mark.parametrize("name", SCORED)
def test_static_strategies_charge_their_scoring(runs, name):
    _, summary, cfg = runs[name]
    assert summary["time_scoring_s"] > 0 and summary["samples_scoring"] > 0
    assert summary["time_cost_s"] == pytest.approx(summary["time_train_s"] + summary["time_scoring_s"])


def test_infobatch_prunes_and_full_does_not(runs):
    assert runs["full"][1]["saving_samples"] == 0 and runs["full"][1]["saving_wall"] == 0
    info = runs["infobatch"][1]
    assert 0 < info["saving_samples"] < 0.5 and info["saving_wall"] is None


def test_training_learns(runs):
    assert runs["full"][1]["final/test_acc"] > 0.5  # synthetic data is learnable: well above 1/10


class SlowClock:
    """The device clock of the run, plus SLOW seconds each time `slow()` is called: a one-off cost
    that lands in time_train_s only if it happens inside an epoch's timed window."""

    SLOW = 100.0

    def __init__(self, monkeypatch):
        from infobatch_runner.engine import loop, runtime, train as train_module

        self.offset, real = 0.0, runtime.timed_now
        for module in (loop, train_module):
            monkeypatch.setattr(module, "timed_now", lambda device: real(device) + self.offset)

    def slow(self) -> None:
        self.offset += self.SLOW


def test_compiled_training_reports_compile_time_apart(tmp_path, monkeypatch):
    import torch

    clock, real_compile = SlowClock(monkeypatch), torch.compile

    class CompiledSlowlyOnFirstCall(torch.nn.Module):
        def __init__(self, model, **kwargs):
            super().__init__()
            self.compiled, self.first = real_compile(model, **kwargs), True

        def forward(self, *args):
            if self.first:
                self.first = False
                clock.slow()  # compiling happens on the first call
            return self.compiled(*args)

    monkeypatch.setattr(torch, "compile", CompiledSlowlyOnFirstCall)
    summary = train(compose_tiny("trainer.epochs=2", "trainer.compile=true", "trainer.compile_backend=eager"), tmp_path)
    assert summary["time_compile_s"] >= SlowClock.SLOW and summary["final/test_acc"] > 0
    assert summary["time_train_s"] < SlowClock.SLOW, "compiling is not charged to training"


def test_checkpoints_are_timed_apart_from_training(tmp_path, monkeypatch):
    from infobatch_runner.engine import checkpoint

    clock, real_save = SlowClock(monkeypatch), checkpoint.save

    def save_slowly(*args, **kwargs):
        clock.slow()
        return real_save(*args, **kwargs)

    monkeypatch.setattr(checkpoint, "save", save_slowly)
    summary = train(compose_tiny("trainer.epochs=3"), tmp_path)
    assert summary["time_checkpoint_s"] >= 3 * SlowClock.SLOW, "every epoch checkpoints by default"
    assert summary["time_train_s"] < SlowClock.SLOW, "checkpoints are not charged to training"
    assert summary["time_cost_s"] == pytest.approx(summary["time_train_s"] + summary["time_scoring_s"])


def compose_tiny(*extra):
    from hydra import compose, initialize_config_module

    with initialize_config_module(version_base="1.3", config_module="infobatch_runner.conf"):
        return compose(config_name="config", overrides=TINY + ["prune=full", *extra])


def test_checkpoint_every_0_writes_no_checkpoint(tmp_path):
    summary = train(compose_tiny("trainer.checkpoint_every=0"), tmp_path)
    assert not (tmp_path / "checkpoints").exists()
    assert summary["time_checkpoint_s"] == 0 and summary["final/test_acc"] > 0


def test_checkpoint_every_2_of_3_epochs_saves_at_epochs_2_and_3(tmp_path, monkeypatch):
    import torch

    from infobatch_runner.engine import checkpoint

    real_save, saved_at = checkpoint.save, []

    def save(directory, state, is_best):
        saved_at.append((state["epoch"], is_best))
        return real_save(directory, state, is_best)

    monkeypatch.setattr(checkpoint, "save", save)
    summary = train(compose_tiny("trainer.checkpoint_every=2"), tmp_path)
    assert [epoch for epoch, _ in saved_at] == [2, 3]
    assert torch.load(tmp_path / "checkpoints" / "last.pt", weights_only=False)["epoch"] == 3
    assert saved_at[0][1], "the first checkpointed epoch is the best checkpointed so far"
    assert summary["time_checkpoint_s"] > 0


def test_the_short_schedule_trains_fewer_epochs_and_pairs_with_the_full_run(tmp_path):
    from infobatch_runner.engine.optim import build_schedule

    full = train(compose_tiny("trainer.epochs=4"), tmp_path / "full")
    cfg = compose_tiny("trainer.epochs=4", "prune=short_schedule", "prune.target_saving=0.5")
    short = train(cfg, tmp_path / "short")
    assert short["setting"] == full["setting"], "paired with the 4-epoch full run"
    assert short["saving_samples"] == 0.5 and short["samples_trained"] == 2 * short["num_train"]
    with open(tmp_path / "short" / "metrics.csv") as f:
        rows = list(csv.DictReader(f))
    assert [float(r["train/kept_fraction"]) for r in rows] == [1.0, 1.0, 0.0, 0.0]
    assert all(float(r["train/loss"]) > 0 for r in rows[:2]) and [r["train/loss"] for r in rows[2:]] == ["nan", "nan"], \
        "an epoch that trains nothing has no loss: a gap in the curve, not a drop to 0"
    compressed = build_schedule(cfg.scheduler, 2)  # the whole schedule within the 2 trained epochs
    assert float(rows[1]["lr"]) == pytest.approx(cfg.optimizer.lr * compressed(1))
    assert rows[3]["test/acc"] == rows[1]["test/acc"], "nothing trains after the schedule ends"
