"""Time to accuracy against the full-data budget curve (results/budget.py), on crafted run folders
whose curve is known: full data at 4, 6 and 8 epochs of N = 100 samples, 10 s per epoch, reaching
80, 86 and 90% (plus 0.1 pp per seed, so that the seeds differ)."""

import copy
import csv
import json

import pytest

from infobatch_runner.results.report import write_report

N = 100
SETTING = {"dataset": {"name": "synthetic"}, "model": {"name": "cnn_small"}, "optimizer": {"name": "sgd"},
           "scheduler": {"name": "onecycle"}, "trainer": {"epochs": 8, "batch_size": 64}, "precision": "fp32",
           "device": "cpu"}
CURVE = {4: 0.80, 6: 0.86, 8: 0.90}
SEEDS = (0, 1, 2)


def write_run(root, name, strategy, seed, epochs, samples, acc, cost_s=None):
    """A finished run: samples_trained passes costing 0.1 s each, unless cost_s says otherwise."""
    setting = copy.deepcopy(SETTING)
    setting["trainer"]["epochs"] = epochs
    run = root / name
    run.mkdir(parents=True)
    (run / "summary.json").write_text(json.dumps({
        "setting": setting, "strategy": strategy, "prune": {"name": strategy, "ratio": 0.5}, "seed": seed,
        "epochs": epochs, "num_train": N, "samples_trained": samples, "samples_scoring": 0.0,
        "saving_samples": 1 - samples / (epochs * N), "time_scoring_s": 0.0,
        "time_cost_s": 0.1 * samples if cost_s is None else cost_s, "final/test_acc": acc + 0.001 * seed}))
    (run / "metrics.csv").write_text("epoch,lr,train/loss,train/kept_fraction,train/epoch_time_s,test/acc,test/loss\n"
                                     f"1,0.1,1.0,1.0,1.0,{acc},0.5\n")


def curve_sweep(root, epochs=(4, 6, 8)):
    for seed in SEEDS:
        for e in epochs:
            write_run(root, f"full{e}_s{seed}", "full", seed, e, e * N, CURVE[e])
    (root / "multirun.yaml").write_text("hydra: {}\n")
    return root


def row(report, label):
    return next(r for r in report.rows if r["label"].startswith(label))


def test_speedup_and_delta_acc_at_equal_cost_are_the_hand_computed_ones(tmp_path):
    sweep = curve_sweep(tmp_path / "sweep")
    for seed in SEEDS:  # 5 epochs' worth of samples (50 s) to 88%: full data needs 7 epochs (70 s) for it
        write_run(sweep, f"info_s{seed}", "infobatch", seed, 8, 500, 0.88)
    report = write_report([sweep], tmp_path / "out")
    r = row(report, "infobatch")
    assert r["speedup_wall"] == pytest.approx(70 / 50) and r["speedup_samples"] == pytest.approx(700 / 500)
    assert r["speedup_wall_relation"] == "=" and r["speedup_wall_ci_low"] == pytest.approx(1.4)
    # at 500 samples the curve is halfway from 80% to 86%: 83%
    assert r["delta_acc_equal_cost_wall_pp"] == pytest.approx(5.0) and r["delta_acc_equal_cost_samples_pp"] == pytest.approx(5.0)
    assert r["curve_budgets"] == 3 and r["fewer_epochs_verdict"] == "faster than training fewer epochs"
    md = (tmp_path / "out" / "report.md").read_text()
    assert "full data trained for 4, 6, 8 epochs" in md and "| infobatch ratio=0.5 | 3 | 1.40x [1.40, 1.40] |" in md
    assert (tmp_path / "out" / "accuracy_vs_cost.png").stat().st_size > 0
    summary = json.loads((sweep / "info_s1" / "summary.json").read_text())  # each run's own figures, for W&B
    assert summary["speedup"] == pytest.approx(1.4) and summary["speedup_relation"] == "="
    assert summary["delta_acc_equal_cost_pp"] == pytest.approx(5.0)


def test_beyond_the_curve_the_figures_are_bounds_never_extrapolations(tmp_path):
    sweep = curve_sweep(tmp_path / "sweep")
    for seed in SEEDS:
        write_run(sweep, f"above_s{seed}", "ucb", seed, 8, 500, 0.95)  # above every budget's accuracy
        write_run(sweep, f"cheap_s{seed}", "seta", seed, 8, 300, 0.70)  # below the cheapest budget's cost
    report = write_report([sweep], tmp_path / "out")
    above, cheap = row(report, "ucb"), row(report, "seta")
    assert above["speedup_wall_relation"] == ">=" and above["speedup_wall"] == pytest.approx(80 / 50)
    assert above["fewer_epochs_verdict"] == "faster than training fewer epochs on every seed (bounds, no CI)"
    assert cheap["speedup_wall_relation"] == "<=" and cheap["speedup_wall"] == pytest.approx(40 / 30)
    assert cheap["delta_acc_equal_cost_wall_relation"] == ">=" and cheap["delta_acc_equal_cost_wall_pp"] == pytest.approx(-10.0)
    md = (tmp_path / "out" / "report.md").read_text()
    assert "| ucb ratio=0.5 | 3 | >= 1.60x |" in md and "| seta ratio=0.5 | 3 | <= 1.33x |" in md


def test_without_a_budget_curve_the_report_says_what_to_add(tmp_path):
    sweep = curve_sweep(tmp_path / "sweep", epochs=(8,))
    for seed in SEEDS:
        write_run(sweep, f"info_s{seed}", "infobatch", seed, 8, 500, 0.88)
    report = write_report([sweep], tmp_path / "out")
    r = row(report, "infobatch")
    assert r["speedup_wall_relation"] == "" and r["fewer_epochs_verdict"] == "" and r["curve_budgets"] == 0
    md = (tmp_path / "out" / "report.md").read_text()
    assert "No full-data budget curve" in md and "`prune=full trainer.epochs=4,6`" in md
    assert not (tmp_path / "out" / "accuracy_vs_cost.png").exists()
    with open(tmp_path / "out" / "report.csv") as f:
        assert next(r for r in csv.DictReader(f) if r["strategy"] == "infobatch")["speedup_wall"] == "nan"


def test_a_short_schedule_run_is_a_point_of_the_curve(tmp_path):
    """Full data for 6 of 8 epochs (short_schedule) is the 6-epoch budget: with full runs at 4 and 8
    epochs it completes the curve, and it is not itself compared with it."""
    sweep = curve_sweep(tmp_path / "sweep", epochs=(4, 8))
    for seed in SEEDS:
        write_run(sweep, f"short_s{seed}", "short_schedule", seed, 8, 600, CURVE[6])
        write_run(sweep, f"info_s{seed}", "infobatch", seed, 8, 500, 0.88)
    report = write_report([sweep], tmp_path / "out")
    assert row(report, "infobatch")["speedup_samples"] == pytest.approx(1.4)
    assert row(report, "short_schedule")["speedup_wall_relation"] == ""
