"""A validation split (dataset.val_fraction) and a search that tunes on it, never on the test set.

The split is a fixed random subset of the training set, the same for every seed, held out of
training (the strategies prune the rest) and evaluated each epoch without augmentation. `objective`
decides what a run returns to a Hydra sweeper; hparams_search=infobatch_optuna(_saving) runs Hydra's
Optuna sweeper over it, end to end through the CLI.
"""

import csv
import json
import re
import math
import os
import signal

import pytest
import torch
import yaml
from hydra import compose, initialize_config_module

from conftest import TINY, run_main
from infobatch_runner.config.validate import validate
from infobatch_runner.data.build import build_data
from infobatch_runner.data.build import VAL_SPLIT_SEED, val_split
from infobatch_runner.data.synthetic import make_synthetic
from infobatch_runner.engine.train import closing_line, objective_of, train
from infobatch_runner.errors import UserError
from infobatch_runner.results.records import EPOCH_KEYS, EPOCH_KEYS_BEFORE_VAL, read_metrics

# The smallest runs a search can make: three trials of one epoch each take seconds.
SEARCH = ["dataset=synthetic", "dataset.num_train=128", "dataset.num_test=64", "dataset.image_size=8",
          "trainer.epochs=1", "trainer.batch_size=32", "trainer.progress=false", "logger=none",
          "hydra.sweeper.n_trials=3"]


def compose_with(*overrides):
    with initialize_config_module(version_base="1.3", config_module="infobatch_runner.conf"):
        return compose(config_name="config", overrides=list(overrides))


# --- the split ---------------------------------------------------------------------------------


def test_the_split_is_disjoint_complete_sized_and_fixed():
    train_idx, val_idx = val_split(1000, 0.1)
    assert len(val_idx) == 100 and len(train_idx) == 900
    assert set(train_idx.tolist()).isdisjoint(val_idx.tolist())
    assert sorted(train_idx.tolist() + val_idx.tolist()) == list(range(1000))
    assert torch.equal(train_idx, train_idx.sort().values) and torch.equal(val_idx, val_idx.sort().values)
    again = val_split(1000, 0.1)  # a fixed generator (VAL_SPLIT_SEED), whatever the global RNG did
    torch.manual_seed(123)
    assert torch.equal(again[1], val_idx) and torch.equal(val_split(1000, 0.1)[1], val_idx)
    assert VAL_SPLIT_SEED == 0
    assert len(val_split(5, 0.1)[1]) == 1, "a split asked for is never empty"
    assert len(val_split(1000, 0.5)[1]) == 500
    none_train, none_val = val_split(7, 0.0)
    assert none_train.tolist() == list(range(7)) and none_val.numel() == 0


@pytest.mark.parametrize("loader", ["device", "dataloader"])
def test_in_memory_data_holds_out_the_same_samples_for_every_seed(loader):
    extra = ["dataset.val_fraction=0.25", "dataset.augment.crop_padding=2", "dataset.augment.flip=true"]
    cfg = compose_with(*TINY, *extra)
    bundles = {seed: build_data(cfg.dataset, 32, 32, 0, torch.device("cpu"), False, seed, loader) for seed in (0, 3)}
    for seed, data in bundles.items():
        assert len(data.train) == 192 and len(data.val) == 64 and len(data.train_eval) == 192
        assert torch.equal(data.val_indices, bundles[0].val_indices), "the split does not depend on the seed"
        assert set(data.train_indices.tolist()).isdisjoint(data.val_indices.tolist())
        ds = cfg.dataset
        whole, _ = make_synthetic(ds.num_train, ds.num_test, ds.num_classes, ds.channels, ds.image_size, ds.noise, seed)
        if loader == "device":
            train_images, val_images, val_labels = data.train.images, data.val.images, data.val.labels
            assert data.val.crop_padding == 0 and not data.val.flip, "validation is not augmented"
        else:
            train_images, val_images = data.train.dataset.arrays.images, data.val.dataset.arrays.images
            val_labels = data.val.dataset.arrays.labels
            assert data.val.dataset.transform is None, "validation is not augmented"
        assert torch.equal(train_images, whole.images[data.train_indices])
        assert torch.equal(val_images, whole.images[data.val_indices])
        assert torch.equal(val_labels, whole.labels[data.val_indices])
        batch = next(iter(data.val.iterate(torch.arange(len(data.val)))))
        assert batch.x.shape[0] == 32 and batch.idx.tolist() == list(range(32))


def test_no_split_leaves_the_training_set_whole():
    cfg = compose_with(*TINY)
    data = build_data(cfg.dataset, 32, 32, 0, torch.device("cpu"), False, 0)
    assert data.val is None and data.val_indices is None and len(data.train) == 256


def test_an_image_folder_tree_holds_out_a_split_with_evaluation_transforms(tmp_path):
    from test_datasets import write_image_tree

    write_image_tree(tmp_path, per_class=4)  # 12 training images
    cfg = compose_with("dataset=imagenet", f"dataset.root={tmp_path}", "dataset.image_size=24",
                       "dataset.eval_resize=28", "dataset.val_fraction=0.25")
    validate(cfg)
    data = build_data(cfg.dataset, 4, 4, 0, torch.device("cpu"), False, 0)
    assert len(data.train) == 9 and len(data.train_eval) == 9 and len(data.val) == 3
    train_files = {p for p, _ in data.train.dataset.samples}
    val_files = {p for p, _ in data.val.dataset.samples}
    assert train_files.isdisjoint(val_files) and len(train_files | val_files) == 12
    assert [p for p, _ in data.train_eval.dataset.samples] == [p for p, _ in data.train.dataset.samples]
    assert data.val.dataset.transform is data.train_eval.dataset.transform, "evaluation transforms: no augmentation"
    x, _, i = data.val.dataset[2]
    assert x.shape == (3, 24, 24) and i == 2, "items are indexed within the split"
    batches = list(data.val.iterate(torch.arange(3)))
    assert sum(b.idx.shape[0] for b in batches) == 3


# --- a run with a split -------------------------------------------------------------------------


@pytest.fixture(scope="module")
def split_run(tmp_path_factory):
    """An InfoBatch run holding out a quarter of 256 samples, with the epochs' plans recorded."""
    from _pytest.monkeypatch import MonkeyPatch

    from infobatch_runner.engine import train as train_module

    run_dir = tmp_path_factory.mktemp("split")
    seen = {"plans": []}
    real_setup, real_epoch = train_module.setup, train_module.train_epoch

    def setup(*args, **kwargs):
        seen["ctx"] = real_setup(*args, **kwargs)
        return seen["ctx"]

    def train_epoch(ctx, net, schedule, epoch, plan, *args, **kwargs):
        seen["plans"].append(plan.indices.clone())
        return real_epoch(ctx, net, schedule, epoch, plan, *args, **kwargs)

    cfg = compose_with(*TINY, "prune=infobatch", "dataset.val_fraction=0.25", "objective=val_acc+saving")
    validate(cfg)
    with MonkeyPatch.context() as mp:
        mp.setattr(train_module, "setup", setup)
        mp.setattr(train_module, "train_epoch", train_epoch)
        summary = train(cfg, run_dir)
    return run_dir, summary, cfg, seen


def test_the_strategy_trains_only_outside_the_split(split_run):
    _, summary, _, seen = split_run
    data = seen["ctx"].data
    assert summary["num_train"] == 192 and summary["num_val"] == 64
    trained = torch.cat(seen["plans"]).unique()
    assert trained.max() < 192, "plans index the remaining training set (N = 256 - 64)"
    originals = set(data.train_indices[trained].tolist())
    assert originals.isdisjoint(data.val_indices.tolist())
    assert torch.equal(data.val_indices, val_split(256, 0.25)[1])


def test_metrics_and_summary_carry_the_validation_accuracy(split_run):
    run_dir, summary, cfg, _ = split_run
    with open(run_dir / "metrics.csv", newline="") as f:
        rows = list(csv.DictReader(f))
    assert tuple(rows[0]) == EPOCH_KEYS and "val/acc" in EPOCH_KEYS and "val/loss" in EPOCH_KEYS
    assert len(rows) == cfg.trainer.epochs
    val = [float(r["val/acc"]) for r in rows]
    assert all(0 <= v <= 1 for v in val) and all(math.isfinite(float(r["val/loss"])) for r in rows)
    assert summary["final/val_acc"] == val[-1] and summary["best/val_acc"] == max(val)
    assert json.loads((run_dir / "summary.json").read_text())["final/val_acc"] == val[-1]
    trained = sum(round(float(r["train/kept_fraction"]) * 192) for r in rows)
    assert trained == summary["samples_trained"]
    assert summary["saving_samples"] == pytest.approx(1 - trained / (cfg.trainer.epochs * 192))


def test_the_split_is_part_of_the_pairing_setting(split_run, tmp_path):
    _, summary, _, _ = split_run
    assert summary["setting"]["dataset"]["val_fraction"] == 0.25
    plain = train(compose_with(*TINY, "prune=full", "trainer.epochs=1"), tmp_path)
    assert "val_fraction" not in plain["setting"]["dataset"], "no split: the setting of earlier versions"
    assert plain["final/val_acc"] is None and plain["best/val_acc"] is None and plain["num_val"] == 0
    with open(tmp_path / "metrics.csv", newline="") as f:
        row = next(csv.DictReader(f))
    assert math.isnan(float(row["val/acc"])) and math.isnan(float(row["val/loss"]))


def test_the_objective_is_never_a_test_number(split_run):
    _, summary, _, _ = split_run
    val, saving = summary["final/val_acc"], summary["saving_samples"]
    assert objective_of("val_acc", summary) == val and objective_of("auto", summary) == val
    assert objective_of("val_acc+saving", summary) == (val, saving)
    assert objective_of("auto", {**summary, "final/val_acc": None}) is None
    line = closing_line(summary, "val_acc+saving")
    assert f"val acc {val:.4f}" in line and f"objective (val_acc, saving_samples) = ({val:.4f}, {saving:.4f})" in line
    assert "objective val_acc = " in closing_line(summary, "val_acc")


def test_a_run_with_a_split_resumes_to_the_same_ending(split_run, tmp_path, monkeypatch):
    from infobatch_runner.engine import train as train_module
    from infobatch_runner.engine.loop import Interrupted

    whole_dir, whole, cfg, _ = split_run
    real, calls = train_module.evaluate, {"n": 0}

    def evaluate(*a, **kw):  # test then validation: SIGTERM after the first epoch's two evaluations
        out = real(*a, **kw)
        calls["n"] += 1
        if calls["n"] == 2:
            os.kill(os.getpid(), signal.SIGTERM)
        return out

    monkeypatch.setattr(train_module, "evaluate", evaluate)
    with pytest.raises(Interrupted):
        train(cfg, tmp_path)
    monkeypatch.undo()
    resumed = compose_with(*TINY, "prune=infobatch", "dataset.val_fraction=0.25", "objective=val_acc", "resume=auto")
    summary = train(resumed, tmp_path)  # another objective changes nothing the run computes: it resumes
    for key in ("final/val_acc", "best/val_acc", "final/test_acc", "samples_trained", "num_train"):
        assert summary[key] == whole[key], key
    ours, theirs = read_metrics(tmp_path / "metrics.csv"), read_metrics(whole_dir / "metrics.csv")
    assert [(r["val/acc"], r["val/loss"], r["test/acc"]) for r in ours] == \
        [(r["val/acc"], r["val/loss"], r["test/acc"]) for r in theirs]


# --- the search through the CLI -----------------------------------------------------------------


def trials(sweep_dir):
    return [json.loads(p.read_text()) for p in sorted(sweep_dir.glob("*_infobatch/summary.json"))]


def test_a_single_objective_optuna_search_runs_end_to_end(tmp_path, monkeypatch, capsys):
    sweep = tmp_path / "search"
    status, out = run_main(monkeypatch, capsys, ["-m", "hparams_search=infobatch_optuna", *SEARCH,
                                                 f"hydra.sweep.dir={sweep}"])
    assert status == 0, out
    results = yaml.safe_load((sweep / "optimization_results.yaml").read_text())
    assert set(results["best_params"]) == {"prune.ratio", "prune.delta", "optimizer.lr"}
    done = trials(sweep)
    assert len(done) == 3 and all(s["num_val"] == 13 and s["num_train"] == 115 for s in done)
    assert results["best_value"] == max(s["final/val_acc"] for s in done), "the search optimised val accuracy"
    best = next(s for s in done if s["final/val_acc"] == results["best_value"])
    assert best["prune"]["ratio"] == pytest.approx(results["best_params"]["prune.ratio"])
    assert out.count("objective val_acc = ") == 3 and (sweep / "report.md").exists()


def test_a_searchs_report_is_one_table_of_its_trials_best_first(tmp_path, monkeypatch, capsys):
    """Not one section and three plots per learning rate drawn: the trials, their drawn parameters in
    full, sorted by the objective; no test accuracy to pick by."""
    sweep = tmp_path / "search"
    status, out = run_main(monkeypatch, capsys, ["-m", "hparams_search=infobatch_optuna", *SEARCH,
                                                 "trainer.epochs=2", f"hydra.sweep.dir={sweep}"])
    assert status == 0, out
    text = (sweep / "report.md").read_text()
    assert text.startswith("# Search trials") and not re.search(r"^## ", text, re.M), "one table, no sections"
    assert "test acc %" not in text and "final acc" not in text
    assert not list(sweep.glob("*.png")) and not (sweep / "report.csv").exists()
    with open(sweep / "trials.csv") as f:
        rows = list(csv.DictReader(f))
    assert [r["rank"] for r in rows] == ["1", "2", "3"]
    assert list(rows[0])[2:5] == ["optimizer.lr", "prune.delta", "prune.ratio"]
    vals = [float(r["val_acc"]) for r in rows]
    assert vals == sorted(vals, reverse=True)
    by_folder = {p.parent.name: json.loads(p.read_text()) for p in sweep.glob("*_infobatch/summary.json")}
    for r in rows:
        summary = by_folder[r["trial"]]
        assert float(r["prune.ratio"]) == summary["prune"]["ratio"], "the drawn value in full"
        assert summary["search"]["objective"] == "val_acc"
    table = [line for line in text.splitlines() if line.startswith("| ") and line[2].isdigit()]
    assert [line.split(" | ")[1] for line in table] == [r["trial"] for r in rows]
    assert "trial" in out and rows[0]["trial"] in out, "the console shows the trials"


def test_a_two_objective_optuna_search_returns_accuracy_and_sample_saving(tmp_path, monkeypatch, capsys):
    sweep = tmp_path / "search"
    status, out = run_main(monkeypatch, capsys, ["-m", "hparams_search=infobatch_optuna_saving", *SEARCH,
                                                 "trainer.epochs=2", f"hydra.sweep.dir={sweep}"])
    assert status == 0, out
    results = yaml.safe_load((sweep / "optimization_results.yaml").read_text())
    measured = [(s["final/val_acc"], s["saving_samples"]) for s in trials(sweep)]
    assert len(measured) == 3 and results["solutions"]
    for solution in results["solutions"]:
        assert set(solution["params"]) == {"prune.ratio", "prune.delta", "optimizer.lr"}
        assert tuple(solution["values"]) in measured
    assert out.count("objective (val_acc, saving_samples) = ") == 3


@pytest.mark.parametrize("args,named", [
    (["objective=val_acc"], "dataset.val_fraction"),
    (["objective=val_acc+saving"], "dataset.val_fraction"),
    (["-m", "hparams_search=infobatch_optuna", "dataset.val_fraction=0"], "dataset.val_fraction"),
    (["-m", "hydra/sweeper=optuna"], "without a validation split"),  # objective=auto returns nothing then
])
def test_a_search_objective_without_a_split_is_one_sentence(tmp_path, monkeypatch, capsys, args, named):
    where = [f"hydra.run.dir={tmp_path / 'run'}", f"hydra.sweep.dir={tmp_path / 'sweep'}"]
    multirun = [a for a in args if a == "-m"]
    status, out = run_main(monkeypatch, capsys, multirun + TINY + [a for a in args if a != "-m"] + where)
    errors = [line for line in out.splitlines() if line.startswith("infobatch-run: error:")]
    assert status == 2 and len(errors) == 1 and named in errors[0] and "Traceback" not in out, out
    assert not (tmp_path / "run").exists() and not (tmp_path / "sweep").exists()


def test_the_search_group_says_how_to_install_its_sweeper(monkeypatch, capsys, tmp_path):
    import importlib.util

    real = importlib.util.find_spec
    monkeypatch.setattr(importlib.util, "find_spec",
                        lambda name, *a: None if name.startswith("hydra_plugins.hydra_optuna") else real(name, *a))
    status, out = run_main(monkeypatch, capsys, ["-m", "hparams_search=infobatch_optuna", *TINY,
                                                 f"hydra.sweep.dir={tmp_path / 'sweep'}"])
    assert status == 2 and "pip install 'infobatch-runner[optuna]'" in out, out


# --- runs of the previous version -------------------------------------------------------------


def test_read_metrics_accepts_the_columns_of_the_previous_version(tmp_path):
    path = tmp_path / "metrics.csv"
    with open(path, "w", newline="") as f:
        writer = csv.DictWriter(f, fieldnames=EPOCH_KEYS_BEFORE_VAL)
        writer.writeheader()
        writer.writerow({k: 0 if k == "epoch" else 0.5 for k in EPOCH_KEYS_BEFORE_VAL})
    (row,) = read_metrics(path)
    assert row["test/acc"] == 0.5 and math.isnan(row["val/acc"]) and math.isnan(row["val/loss"])
    path.write_text("epoch,lr,nonsense\n0,1,2\n")
    with pytest.raises(UserError, match="does not have the columns"):
        read_metrics(path)


def test_a_run_of_the_previous_version_resumes_and_reports(tmp_path, monkeypatch):
    """Its metrics.csv lacks the val columns and its checkpoint's config dataset.val_fraction and objective."""
    from infobatch_runner.engine import train as train_module
    from infobatch_runner.engine.loop import Interrupted
    from infobatch_runner.results.report import write_report
    from infobatch_runner.results.runs import read_run

    args = (*TINY, "prune=infobatch")
    real, calls = train_module.evaluate, {"n": 0}

    def evaluate(*a, **kw):  # SIGTERM after the first epoch's evaluation: its checkpoint is kept
        out = real(*a, **kw)
        calls["n"] += 1
        if calls["n"] == 1:
            os.kill(os.getpid(), signal.SIGTERM)
        return out

    monkeypatch.setattr(train_module, "evaluate", evaluate)
    run = tmp_path / "run"
    with pytest.raises(Interrupted):
        train(compose_with(*args), run)
    monkeypatch.undo()
    path = run / "checkpoints" / "last.pt"
    state = torch.load(path, weights_only=False)
    assert state["epoch"] == 1
    del state["config"]["dataset"]["val_fraction"]  # as the previous version saved it
    state["config"].pop("objective", None)
    for key in ("val_acc", "val_loss"):
        del state["counters"][key]
    torch.save(state, path)
    with open(run / "metrics.csv", newline="") as f:
        old_rows = [{k: r[k] for k in EPOCH_KEYS_BEFORE_VAL} for r in csv.DictReader(f)]
    with open(run / "metrics.csv", "w", newline="") as f:
        writer = csv.DictWriter(f, fieldnames=EPOCH_KEYS_BEFORE_VAL)
        writer.writeheader()
        writer.writerows(old_rows)

    summary = train(compose_with(*args, "resume=auto"), run)
    rows = read_metrics(run / "metrics.csv")
    assert [r["epoch"] for r in rows] == [1, 2, 3] and all(math.isnan(r["val/acc"]) for r in rows)
    assert summary["final/val_acc"] is None and summary["final/test_acc"] == rows[-1]["test/acc"]
    assert read_run(run).rows[0]["test/acc"] == rows[0]["test/acc"]
    report = write_report([tmp_path], tmp_path / "report")
    assert len(report.rows) == 1 and not report.skipped

    # and a metrics.csv of the previous version next to a finished summary still reports as it is
    with open(run / "metrics.csv", "w", newline="") as f:
        writer = csv.DictWriter(f, fieldnames=EPOCH_KEYS_BEFORE_VAL)
        writer.writeheader()
        writer.writerows({k: r[k] for k in EPOCH_KEYS_BEFORE_VAL} for r in rows)
    assert len(read_run(run).rows) == 3


def test_wandb_rows_get_val_series_only_with_a_split():
    from infobatch_runner.results.wandb_runs import WandbTracker

    logged = []
    tracker = WandbTracker.__new__(WandbTracker)
    tracker.run = type("Run", (), {"log": lambda self, row: logged.append(row)})()
    base = {"epoch": 0, "test/acc": 0.5}
    tracker.log_epoch({**base, "val/acc": math.nan, "val/loss": math.nan})
    tracker.log_epoch({**base, "val/acc": 0.4, "val/loss": 1.0})
    assert logged == [base, {**base, "val/acc": 0.4, "val/loss": 1.0}]
