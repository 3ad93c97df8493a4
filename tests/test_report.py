"""The sweep report: pairing with baselines, statistics on known inputs, the files it writes."""

import csv
import json
import math

import pytest
from PIL import Image

from infobatch_runner.report import (Stat, baselines, compact_table, find_runs, group_runs, main, verdict,
                                     write_report)
from infobatch_runner.tracking import EPOCH_KEYS

SETTING = {"dataset": {"name": "synthetic", "limit_train": None}, "model": {"name": "cnn_small"},
           "optimizer": {"name": "sgd", "lr": 0.1}, "scheduler": {"name": "onecycle"},
           "trainer": {"epochs": 2, "batch_size": 64}, "precision": "fp32", "device": "cpu"}


def write_run(root, name, strategy, seed, cost, acc, ratio=0.5, setting=SETTING, kept=(1.0, 0.6)):
    run = root / name
    run.mkdir(parents=True)
    prune = {"name": strategy, "ratio": 0.0 if strategy == "full" else ratio}
    summary = {"setting": setting, "strategy": strategy, "prune": prune, "seed": seed, "time_cost_s": cost,
               "time_scoring_s": 0.0, "saving_samples": 0.0 if strategy == "full" else 0.2, "final/test_acc": acc,
               "saving_wall": 0.0 if strategy == "full" else None}
    (run / "summary.json").write_text(json.dumps(summary))
    with open(run / "metrics.csv", "w", newline="") as f:
        w = csv.DictWriter(f, fieldnames=EPOCH_KEYS)
        w.writeheader()
        for e, k in enumerate(kept if strategy != "full" else (1.0, 1.0)):
            w.writerow({"epoch": e, "lr": 0.1, "train/loss": 1.0, "train/kept_fraction": k, "train/epoch_time_s": cost / 2,
                        "test/acc": acc - 0.1 * (1 - e), "test/loss": 0.5})
    return run


def test_pairs_by_setting_and_seed_and_lists_runs_without_baseline(tmp_path):
    write_run(tmp_path, "f0", "full", 0, cost=10.0, acc=0.90)
    write_run(tmp_path, "f1", "full", 1, cost=12.0, acc=0.92)
    write_run(tmp_path, "i0", "infobatch", 0, cost=7.0, acc=0.89)
    write_run(tmp_path, "i1", "infobatch", 1, cost=9.0, acc=0.93)
    write_run(tmp_path, "i2", "infobatch", 2, cost=8.0, acc=0.91)  # no full run with seed 2
    other = dict(SETTING, optimizer={"name": "sgd", "lr": 0.05})
    write_run(tmp_path, "o0", "infobatch", 0, cost=7.0, acc=0.88, setting=other)  # another setting: no baseline
    groups = group_runs(find_runs([tmp_path]))
    info = next(g for g in groups if g.strategy == "infobatch" and g.setting_key == json.dumps(SETTING, sort_keys=True))
    assert info.saving_wall.values == pytest.approx([0.3, 0.25])
    assert info.acc_diff.values == pytest.approx([-0.01, 0.01])
    assert [r.path.name for r in info.unpaired] == ["i2"]
    lonely = next(g for g in groups if g.setting_key != info.setting_key)
    assert lonely.saving_wall.n == 0 and len(lonely.unpaired) == 1


def test_repeated_full_runs_are_averaged_into_one_baseline(tmp_path):
    # `-m prune=full,infobatch prune.ratio=0.3,0.5` runs the same full job once per ratio.
    write_run(tmp_path, "fa", "full", 0, cost=10.0, acc=0.90, ratio=0.3)
    write_run(tmp_path, "fb", "full", 0, cost=14.0, acc=0.92, ratio=0.5)
    write_run(tmp_path, "i", "infobatch", 0, cost=6.0, acc=0.90)
    runs = find_runs([tmp_path])
    b = baselines(runs)[(json.dumps(SETTING, sort_keys=True), 0)]
    assert (b.cost_s, b.final_acc, b.runs) == pytest.approx((12.0, 0.91, 2))
    groups = group_runs(runs)
    assert [g.label for g in groups] == ["full", "infobatch ratio=0.5"], "the ratio passed to full is ignored"
    assert groups[1].saving_wall.values == pytest.approx([0.5]) and groups[1].baseline_runs == [2]


def test_statistics_on_known_inputs():
    s = Stat([1.0, 2.0, 3.0, 4.0])
    assert s.mean == 2.5 and s.sd == pytest.approx(math.sqrt(5 / 3))
    lo, hi = s.ci95()
    assert (lo, hi) == pytest.approx((2.5 - 3.182 * s.sd / 2, 2.5 + 3.182 * s.sd / 2))
    assert Stat([1.0, 2.0]).ci95() is None and math.isnan(Stat([1.0]).sd)


@pytest.mark.parametrize("diffs,expected", [
    ([0.001, 0.0, 0.002], "lossless"),
    ([-0.02, -0.03, -0.025], "lossy"),
    ([-0.02, 0.01, 0.0], "inconclusive"),
    ([-0.001], "lossless (point estimate)"),
    ([-0.01, -0.02], "lossy (point estimate)"),
    ([], "no baseline"),
])
def test_lossless_verdict_says_what_it_tested(diffs, expected):
    v, tested = verdict(Stat(diffs), tolerance=0.005)
    assert v == expected
    if diffs:
        assert "-0.50 pp" in tested and f"{len(diffs)} seed" in tested
        assert ("95% CI" in tested) == (len(diffs) >= 3)


def test_report_files_and_filled_saving_wall(tmp_path):
    for seed in range(3):
        write_run(tmp_path, f"f{seed}", "full", seed, cost=10.0 + seed, acc=0.90)
        write_run(tmp_path, f"i{seed}", "infobatch", seed, cost=7.0, acc=0.90 - 0.001 * seed)
    report = write_report([tmp_path], tmp_path / "out")
    names = sorted(p.name for p in report.files)
    assert names == ["accuracy_curves.png", "accuracy_vs_saving.png", "kept_fraction.png", "report.csv", "report.md"]
    for png in (p for p in report.files if p.suffix == ".png"):
        with Image.open(png) as im:
            assert im.size[0] >= 600 and im.size[1] >= 400
    md = (tmp_path / "out" / "report.md").read_text()
    assert "| infobatch ratio=0.5 | 3 |" in md and "lossless" in md and "95% CI" in md
    rows = list(csv.DictReader(open(tmp_path / "out" / "report.csv")))
    assert [r["label"] for r in rows] == ["full", "infobatch ratio=0.5"]
    assert float(rows[1]["saving_wall_mean"]) == pytest.approx(1 - (7 / 10 + 7 / 11 + 7 / 12) / 3)
    assert json.loads((tmp_path / "i1" / "summary.json").read_text())["saving_wall"] == pytest.approx(1 - 7 / 11)
    assert len(report.updated) == 3
    assert "infobatch ratio=0.5" in compact_table(report.rows)


def test_report_cli_and_its_errors(tmp_path, capsys):
    write_run(tmp_path, "f0", "full", 0, cost=10.0, acc=0.9)
    write_run(tmp_path, "i0", "infobatch", 0, cost=8.0, acc=0.9)
    (tmp_path / "broken").mkdir()
    (tmp_path / "broken" / "summary.json").write_text("{not json")
    main([str(tmp_path)])
    out = capsys.readouterr().out
    assert "infobatch ratio=0.5" in out and "skipped 1 folder" in out and (tmp_path / "report.md").exists()
    with pytest.raises(SystemExit) as exit_:
        main([str(tmp_path / "nowhere")])
    assert exit_.value.code == 2 and "is not a folder" in capsys.readouterr().err
    empty = tmp_path / "empty"
    empty.mkdir()
    with pytest.raises(SystemExit):
        main([str(empty)])
    assert "no readable run folders" in capsys.readouterr().err
