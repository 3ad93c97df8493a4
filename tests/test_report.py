"""The sweep report: pairing with baselines, statistics on known inputs, the files it writes."""

import csv
import json
import statistics
import math
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
from PIL import Image

from infobatch_runner.results.cli import main
from infobatch_runner.results.pairing import baselines, group_runs
from infobatch_runner.results.records import EPOCH_KEYS
from infobatch_runner.results.render import CSV_COLUMNS, compact_table
from infobatch_runner.results.report import write_report
from infobatch_runner.results.runs import find_runs
from infobatch_runner.results.stats import Stat, t_quantile, verdict

SETTING = {"dataset": {"name": "synthetic", "limit_train": None}, "model": {"name": "cnn_small"},
           "optimizer": {"name": "sgd", "lr": 0.1}, "scheduler": {"name": "onecycle"},
           "trainer": {"epochs": 2, "batch_size": 64}, "precision": "fp32", "device": "cpu"}


def write_run(root, name, strategy, seed, cost, acc, ratio=0.5, setting=SETTING, kept=(1.0, 0.6), extra=None):
    run = root / name
    run.mkdir(parents=True)
    prune = {"name": strategy, "ratio": 0.0 if strategy == "full" else ratio}
    summary = {"setting": setting, "strategy": strategy, "prune": prune, "seed": seed, "time_cost_s": cost,
               "time_scoring_s": 0.0, "saving_samples": 0.0 if strategy == "full" else 0.2, "final/test_acc": acc,
               "saving_wall": 0.0 if strategy == "full" else None, **(extra or {})}
    (run / "summary.json").write_text(json.dumps(summary))
    with open(run / "metrics.csv", "w", newline="") as f:
        w = csv.DictWriter(f, fieldnames=EPOCH_KEYS)
        w.writeheader()
        for e, k in enumerate(kept if strategy != "full" else (1.0, 1.0)):
            w.writerow({"epoch": e, "lr": 0.1, "train/loss": 1.0, "train/kept_fraction": k, "train/epoch_time_s": cost / 2,
                        "test/acc": (acc if isinstance(acc, float) and acc == acc else 0.5) - 0.1 * (1 - e),
                        "test/loss": 0.5})
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
    assert (lo, hi) == pytest.approx((2.5 - 3.182446 * s.sd / 2, 2.5 + 3.182446 * s.sd / 2))
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
    (tmp_path / "multirun.yaml").write_text("hydra: {}\n")  # one sweep: its runs may be filled in
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
    assert "| infobatch ratio=0.5 | 3 | 3 |" in md and "lossless" in md and "95% CI" in md
    rows = list(csv.DictReader(open(tmp_path / "out" / "report.csv")))
    assert [r["label"] for r in rows] == ["full", "infobatch ratio=0.5"]
    assert float(rows[1]["saving_wall_mean"]) == pytest.approx(1 - (7 / 10 + 7 / 11 + 7 / 12) / 3)
    assert json.loads((tmp_path / "i1" / "summary.json").read_text())["saving_wall"] == pytest.approx(1 - 7 / 11)
    assert len(report.updated) == 3
    assert "infobatch ratio=0.5" in compact_table(report.rows)


def test_a_report_across_sweeps_writes_into_no_run(tmp_path):
    """A run paired with a full run of another sweep (or of no sweep) gets a saving in the report,
    not in its own summary.json: the report writes only under --out and within one sweep."""
    for sweep in ("a", "b"):
        (tmp_path / sweep).mkdir()
        (tmp_path / sweep / "multirun.yaml").write_text("hydra: {}\n")
    write_run(tmp_path / "a", "f0", "full", 0, cost=10.0, acc=0.90)
    write_run(tmp_path / "b", "i0", "infobatch", 0, cost=7.0, acc=0.90)
    write_run(tmp_path, "i1", "infobatch", 0, cost=6.0, acc=0.90)  # a run of its own
    before = {p: p.read_bytes() for p in tmp_path.rglob("summary.json")}
    report = write_report([tmp_path / "a", tmp_path / "b", tmp_path / "i1"], tmp_path / "out")
    assert report.updated == [] and {p: p.read_bytes() for p in tmp_path.rglob("summary.json")} == before
    rows = list(csv.DictReader(open(tmp_path / "out" / "report.csv")))
    assert float(rows[1]["saving_wall_mean"]) == pytest.approx(1 - (7 / 10 + 6 / 10) / 2), "the report still pairs them"


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


# --- honest statistics: distinct seeds, duplicates, bad inputs, failed jobs ---------------------------------


def sweep(root, seeds=(0, 1, 2), acc=0.90, cost=10.0):
    for seed in seeds:
        write_run(root, f"{seed}_full", "full", seed, cost=cost, acc=acc)
        write_run(root, f"{seed}_infobatch", "infobatch", seed, cost=7.0, acc=acc - 0.001 * seed)
    (root / "multirun.yaml").write_text("hydra: {}\n")  # Hydra's record: the folder is one sweep
    return root


def info_group(groups):
    return next(g for g in groups if g.strategy == "infobatch")


def no_traceback(captured):
    text = captured.out + captured.err
    assert "Traceback" not in text
    return text


def test_the_same_folder_given_twice_counts_once(tmp_path, capsys):
    s = sweep(tmp_path / "s")
    once = info_group(group_runs(find_runs([s])))
    for dirs in ([s, s], [s, tmp_path / "s" / ".." / "s"]):
        twice = info_group(group_runs(find_runs(dirs)))
        assert len(twice.runs) == 3 and twice.acc_diff.values == pytest.approx(once.acc_diff.values)
    main([str(s), str(s), "--out", str(tmp_path / "out")])
    no_traceback(capsys.readouterr())
    rows = list(csv.DictReader(open(tmp_path / "out" / "report.csv")))
    assert [(r["runs"], r["seeds"], r["seeds_paired"]) for r in rows] == [("3", "3", "3"), ("3", "3", "3")]


def test_a_sweep_folder_and_one_of_its_job_folders_count_once(tmp_path):
    s = sweep(tmp_path / "s")
    report = write_report([s, s / "1_infobatch", s / "1_full"], tmp_path / "out")
    info = info_group(report.groups)
    assert len(info.runs) == 3 and info.acc_diff.n == 3 and not report.skipped
    assert sorted(r.path.name for r in info.runs) == ["0_infobatch", "1_infobatch", "2_infobatch"]


def test_two_sweeps_sharing_a_seed_count_distinct_seeds_and_keep_the_verdict(tmp_path, capsys):
    # sweep a: seeds 0, 1; sweep b: seeds 0, 2. Seed 0 ran twice, full and infobatch alike.
    a, b = tmp_path / "a", tmp_path / "b"
    write_run(a, "0_full", "full", 0, cost=10.0, acc=0.899)
    write_run(a, "0_infobatch", "infobatch", 0, cost=6.0, acc=0.901)
    write_run(a, "1_full", "full", 1, cost=10.0, acc=0.910)
    write_run(a, "1_infobatch", "infobatch", 1, cost=7.0, acc=0.914)
    write_run(b, "0_full", "full", 0, cost=12.0, acc=0.901)
    write_run(b, "0_infobatch", "infobatch", 0, cost=8.0, acc=0.903)
    write_run(b, "2_full", "full", 2, cost=10.0, acc=0.920)
    write_run(b, "2_infobatch", "infobatch", 2, cost=8.0, acc=0.916)
    # Seed 0: infobatch 0.902 and full 0.900 on average, Δ +0.2 pp; seed 1: +0.4 pp; seed 2: -0.4 pp.
    per_seed = [0.002, 0.004, -0.004]
    assert verdict(Stat(per_seed), 0.005)[0] == "inconclusive"
    counting_runs = [0.901 - 0.900, 0.903 - 0.900, 0.004, -0.004]  # what counting runs, not seeds, would test
    assert verdict(Stat(counting_runs), 0.005)[0] == "lossless", "the numbers must make duplicates flip the verdict"

    report = write_report([a, b], tmp_path / "out")
    info = info_group(report.groups)
    assert len(info.runs) == 4 and list(info.seeds) == [0, 1, 2]
    assert info.acc_diff.n == 3 and info.acc_diff.values == pytest.approx(per_seed)
    assert info.final_acc.values == pytest.approx([0.902, 0.914, 0.916])
    assert info.cost_s.values == pytest.approx([7.0, 7.0, 8.0])
    assert info.saving_wall.values == pytest.approx([1 - 7 / 11, 0.3, 0.2]), "seed means against seed means"
    assert info.baseline_runs == [2, 1, 1]
    full = next(g for g in report.groups if g.strategy == "full")
    assert full.final_acc.values == pytest.approx([0.900, 0.910, 0.920]) and full.saving_wall.values == [0, 0, 0]
    row = next(r for r in report.rows if r["strategy"] == "infobatch")
    assert (row["runs"], row["seeds"], row["seeds_paired"], row["verdict"]) == (4, 3, 3, "inconclusive")
    assert "over 3 seeds" in row["tested"]
    md = (tmp_path / "out" / "report.md").read_text()
    assert "| infobatch ratio=0.5 (2 baseline runs averaged) | 4 | 3 |" in md and "| full | 4 | 3 |" in md
    assert "repeats of the same seed" in md and "count distinct seeds" in md
    csv_rows = list(csv.DictReader(open(tmp_path / "out" / "report.csv")))
    assert list(csv_rows[0]) == CSV_COLUMNS and csv_rows[1]["seeds"] == "3" and csv_rows[1]["verdict"] == "inconclusive"
    assert "seeds" in compact_table(report.rows).splitlines()[0]
    main([str(a), str(b), "--out", str(tmp_path / "out2")])
    out = no_traceback(capsys.readouterr())
    assert "inconclusive" in out and "lossless" not in out


def test_a_copied_folder_with_the_same_wandb_id_counts_once(tmp_path, capsys):
    s = tmp_path / "s"
    for seed in range(3):
        write_run(s, f"{seed}_full", "full", seed, cost=10.0, acc=0.9, extra={"wandb": {"id": f"f{seed}"}})
        write_run(s, f"{seed}_infobatch", "infobatch", seed, cost=7.0, acc=0.9, extra={"wandb": {"id": f"i{seed}"}})
    shutil.copytree(s / "1_infobatch", s / "1_infobatch_copy")
    # runs without a W&B id (logger=none) or with a null one are never taken for copies
    write_run(s, "3_infobatch", "infobatch", 3, cost=7.0, acc=0.9, extra={"wandb": {"id": None}})
    write_run(s, "4_infobatch", "infobatch", 4, cost=7.0, acc=0.9, extra={"wandb": None})
    skipped = []
    runs = find_runs([s], skipped)
    assert len(runs) == 8
    assert skipped == [(s / "1_infobatch_copy", f"duplicate of {s / '1_infobatch'} (same W&B run id i1)")]
    main([str(s)])
    out = no_traceback(capsys.readouterr()).replace("\n", " ")
    assert "skipped 1 folder" in out and f"duplicate of {s / '1_infobatch'}" in out
    assert f"duplicate of {s / '1_infobatch'}" in (s / "report.md").read_text()


def test_runs_that_differ_only_in_the_loader_are_neither_paired_nor_averaged(tmp_path):
    device = dict(SETTING, trainer=dict(SETTING["trainer"], loader="device", compile=False, compile_mode="default"))
    loader = dict(SETTING, trainer=dict(SETTING["trainer"], loader="dataloader", compile=False, compile_mode="default"))
    compiled = dict(SETTING, trainer=dict(device["trainer"], compile=True))
    write_run(tmp_path, "full_device", "full", 0, cost=10.0, acc=0.90, setting=device)
    write_run(tmp_path, "full_loader", "full", 0, cost=20.0, acc=0.80, setting=loader)
    write_run(tmp_path, "info_loader", "infobatch", 0, cost=7.0, acc=0.89, setting=loader)
    write_run(tmp_path, "info_compiled", "infobatch", 0, cost=5.0, acc=0.89, setting=compiled)
    runs = find_runs([tmp_path])
    base = baselines(runs)
    assert sorted(b.runs for b in base.values()) == [1, 1], "two baselines, not one of two runs"
    groups = group_runs(runs)
    assert len([g for g in groups if g.strategy == "full"]) == 2
    by_run = {g.runs[0].path.name: g for g in groups if g.strategy == "infobatch"}
    assert len(by_run) == 2 and all(len(g.runs) == 1 for g in by_run.values())
    assert by_run["info_loader"].acc_diff.values == pytest.approx([0.09])  # against full_loader only
    assert by_run["info_loader"].saving_wall.values == pytest.approx([1 - 7 / 20])
    assert by_run["info_compiled"].acc_diff.n == 0 and len(by_run["info_compiled"].unpaired) == 1
    write_report([tmp_path], tmp_path / "out")
    md = (tmp_path / "out" / "report.md").read_text()
    assert "trainer.loader=device" in md and "trainer.loader=dataloader" in md and "trainer.compile=true" in md


@pytest.mark.parametrize("key,value,reason", [
    ("final/test_acc", None, "final/test_acc is null"),
    ("final/test_acc", "0.9", "final/test_acc is \"0.9\", not a number"),
    ("final/test_acc", math.nan, "final/test_acc is nan, not a finite number"),
    ("final/test_acc", 1.5, "final/test_acc is 1.5, outside [0, 1]"),
    ("final/test_acc", -0.1, "final/test_acc is -0.1, outside [0, 1]"),
    ("time_cost_s", None, "time_cost_s is null"),
    ("time_cost_s", "12 s", "time_cost_s is \"12 s\", not a number"),
    ("time_cost_s", math.nan, "time_cost_s is nan, not a finite number"),
    ("time_cost_s", -3.0, "time_cost_s is -3, below 0"),
    ("seed", "0", "seed is \"0\", not an integer"),
    ("seed", 1.5, "seed is 1.5, not an integer"),
])
def test_a_run_with_an_unusable_value_is_skipped_naming_the_key(tmp_path, capsys, key, value, reason):
    s = sweep(tmp_path / "s")
    bad = write_run(s, "3_infobatch", "infobatch", 2, cost=7.0, acc=0.9)
    summary = json.loads((bad / "summary.json").read_text())
    summary[key] = value
    (bad / "summary.json").write_text(json.dumps(summary))
    main([str(s)])
    out = no_traceback(capsys.readouterr())
    skipped_line = next(line for line in out.splitlines() if line.startswith("skipped"))
    assert f"skipped 1 folder(s): {bad} (summary.json: {reason})" == skipped_line
    assert info_group(write_report([s], tmp_path / "out").groups).runs.__len__() == 3
    assert f"- {bad}: summary.json: {reason}" in (s / "report.md").read_text()
    # a folder holding only that run: nothing to report, one line naming the file and key, exit 2
    alone = tmp_path / "alone"
    shutil.copytree(bad, alone / "run")
    with pytest.raises(SystemExit) as exit_:
        main([str(alone)])
    err = no_traceback(capsys.readouterr()).strip()
    assert exit_.value.code == 2 and len(err.splitlines()) == 1 and f"summary.json: {reason}" in err


@pytest.mark.parametrize("break_it,reason", [
    (lambda run: (run / "summary.json").write_text("[1, 2]"), "summary.json is not a JSON object but list"),
    (lambda run: (run / "summary.json").write_text("null"), "summary.json is not a JSON object but null"),
    (lambda run: (run / "metrics.csv").write_text((run / "metrics.csv").read_text() + "2,0.1,oops,1,1,0.5,0.5\n"),
     "metrics.csv line 4: train/loss is 'oops', not a number"),
    (lambda run: (run / "metrics.csv").write_text((run / "metrics.csv").read_text() + "2,0.1\n"),
     "metrics.csv line 4: train/loss is missing"),
    (lambda run: (run / "metrics.csv").unlink(), "metrics.csv is missing"),
])
def test_a_run_with_unusable_files_is_skipped_naming_the_file(tmp_path, capsys, break_it, reason):
    s = sweep(tmp_path / "s")
    break_it(s / "1_infobatch")
    report = write_report([s], tmp_path / "out")
    assert report.skipped == [(s / "1_infobatch", reason)]
    assert len(info_group(report.groups).runs) == 2
    main([str(s)])
    out = no_traceback(capsys.readouterr())
    assert f"skipped 1 folder(s): {s / '1_infobatch'} ({reason})" in out


def test_a_baseline_of_cost_zero_pairs_accuracy_but_no_wall_saving(tmp_path, capsys):
    s = tmp_path / "s"
    for seed in range(3):
        write_run(s, f"{seed}_full", "full", seed, cost=0.0 if seed < 2 else 10.0, acc=0.90)
        write_run(s, f"{seed}_infobatch", "infobatch", seed, cost=7.0, acc=0.90)
    (s / "multirun.yaml").write_text("hydra: {}\n")
    write_run(s, "0_other", "infobatch", 0, cost=7.0, acc=0.90, ratio=0.3)  # only a zero-cost baseline
    report = write_report([s], tmp_path / "out")
    info = next(g for g in report.groups if g.label == "infobatch ratio=0.5")
    assert info.acc_diff.values == pytest.approx([0.0, 0.0, 0.0]) and info.saving_wall.values == pytest.approx([0.3])
    assert info.wall_na == [(0, "baseline cost is 0 s"), (1, "baseline cost is 0 s")]
    other = next(g for g in report.groups if g.label == "infobatch ratio=0.3")
    assert other.acc_diff.n == 1 and other.saving_wall.n == 0
    row = next(r for r in report.rows if r["label"] == "infobatch ratio=0.3")
    assert math.isnan(row["saving_wall_mean"]) and row["verdict"] == "lossless (point estimate)"
    md = (tmp_path / "out" / "report.md").read_text()
    assert "- infobatch ratio=0.5: seeds 0, 1: baseline cost is 0 s" in md
    assert "- infobatch ratio=0.3: seed 0: baseline cost is 0 s" in md
    assert "| infobatch ratio=0.3 | 1 | 1 | 90.00 | 0.00 | n/a |" in md
    assert len(report.files) == 5, "the plots cope with a group whose wall saving is n/a"
    assert json.loads((s / "0_other" / "summary.json").read_text())["saving_wall"] is None
    assert [r.path.name for r in report.updated] == ["2_infobatch"]
    main([str(s)])
    assert "n/a" in no_traceback(capsys.readouterr())


def test_an_out_folder_that_cannot_be_written_is_one_sentence_and_exit_2(tmp_path, capsys):
    s = sweep(tmp_path / "s")
    (tmp_path / "a_file").write_text("not a folder")
    for out in (tmp_path / "a_file" / "report", tmp_path / "a_file"):
        with pytest.raises(SystemExit) as exit_:
            main([str(s), "--out", str(out)])
        err = no_traceback(capsys.readouterr()).strip()
        assert exit_.value.code == 2 and len(err.splitlines()) == 1
        assert err.startswith(f"infobatch-report: error: cannot write the report to {out} (") and err.endswith(").")
    # the same from the installed command, in a process of its own: no traceback on its stderr
    cli = Path(sys.executable).with_name("infobatch-report")
    done = subprocess.run([str(cli), str(s), "--out", str(tmp_path / "a_file" / "report")],
                          capture_output=True, text=True, timeout=120)
    assert done.returncode == 2 and "Traceback" not in done.stderr + done.stdout
    assert done.stderr.strip() == (f"infobatch-report: error: cannot write the report to "
                                   f"{tmp_path / 'a_file' / 'report'} (Not a directory).")


@pytest.mark.parametrize("option", ["--tolerance", "--tolerance-pp"])
@pytest.mark.parametrize("tolerance", ["-0.1", "nan", "inf", "abc"])
def test_a_bad_tolerance_is_exit_2_without_traceback(tmp_path, capsys, tolerance, option):
    s = sweep(tmp_path / "s")
    with pytest.raises(SystemExit) as exit_:
        main([str(s), f"{option}={tolerance}"])
    err = no_traceback(capsys.readouterr())
    assert exit_.value.code == 2 and option in err.splitlines()[-1]
    assert not (s / "report.md").exists()


def test_the_tolerance_in_points_and_as_a_fraction_judge_alike(tmp_path, capsys):
    s = sweep(tmp_path / "s")
    main([str(s), "--tolerance-pp", "0.5", "--out", str(tmp_path / "pp")])
    main([str(s), "--tolerance", "0.005", "--out", str(tmp_path / "fraction")])
    read = lambda d: [(r["label"], r["verdict"]) for r in csv.DictReader(open(d / "report.csv"))]  # noqa: E731
    assert read(tmp_path / "pp") == read(tmp_path / "fraction")
    assert "tolerance -0.50 pp" in (tmp_path / "pp" / "report.md").read_text()


def test_a_run_folder_that_cannot_be_written_is_warned_about(tmp_path, caplog):
    s = sweep(tmp_path / "s")
    (s / "1_infobatch" / "summary.json.tmp").mkdir()  # write_json_atomic cannot write there (even as root)
    report = write_report([s], tmp_path / "out")
    assert sorted(r.path.name for r in report.updated) == ["0_infobatch", "2_infobatch"]
    assert json.loads((s / "1_infobatch" / "summary.json").read_text())["saving_wall"] is None
    warnings = [r.getMessage() for r in caplog.records if r.levelname == "WARNING"]
    assert len(warnings) == 1 and str(s / "1_infobatch" / "summary.json") in warnings[0]


def write_failed(root, name, error, overrides, kind="RuntimeError"):
    job = root / name
    job.mkdir(parents=True)
    (job / "failed.json").write_text(json.dumps({"error": error, "type": kind, "overrides": overrides}))
    return job


def test_failed_jobs_are_listed_in_the_report_and_after_the_table(tmp_path, capsys):
    s = sweep(tmp_path / "s", seeds=(0, 1))
    job = write_failed(s, "2_infobatch", "CUDA ran out of memory in epoch 3.", ["prune=infobatch", "seed=2"],
                       kind="OutOfMemoryError")
    report = write_report([s], tmp_path / "out")
    assert report.failed == [(job, "CUDA ran out of memory in epoch 3.")]
    assert report.failed[0].overrides == ("prune=infobatch", "seed=2") and report.failed[0].type == "OutOfMemoryError"
    assert len(info_group(report.groups).runs) == 2 and not report.skipped
    md = (tmp_path / "out" / "report.md").read_text()
    assert "## Failed runs" in md
    assert f"- {job} (`prune=infobatch seed=2`): OutOfMemoryError: CUDA ran out of memory in epoch 3." in md
    assert "CUDA" not in compact_table(report.rows)
    main([str(s)])
    out = no_traceback(capsys.readouterr())
    table_end = out.index("1 run(s) failed")
    assert compact_table(report.rows) in out[:table_end]
    assert f"1 run(s) failed: {job}: CUDA ran out of memory in epoch 3." in out.splitlines()


def test_a_folder_holding_only_failed_runs_still_gets_a_report(tmp_path, capsys):
    s = tmp_path / "s"
    a = write_failed(s, "0_full", "The dataset file data/x.npz is truncated.", ["prune=full", "seed=0"])
    b = write_failed(s, "0_infobatch", "The dataset file data/x.npz is truncated.", ["prune=infobatch", "seed=0"])
    (s / "1_weird").mkdir()
    (s / "1_weird" / "failed.json").write_text("[]")  # an unreadable failed.json is still a failed job
    report = write_report([s], s)
    assert [p for p, _ in report.failed] == [a, b, s / "1_weird"] and report.groups == [] and report.rows == []
    md = (s / "report.md").read_text()
    assert "No finished run to compare." in md and "## Failed runs" in md
    assert f"- {a} (`prune=full seed=0`): RuntimeError: The dataset file data/x.npz is truncated." in md
    assert f"- {s / '1_weird'}: failed.json is not a JSON object" in md
    main([str(s)])
    out = no_traceback(capsys.readouterr())
    assert "3 run(s) failed:" in out
    assert list(csv.DictReader(open(s / "report.csv"))) == []


@pytest.mark.parametrize("df,quantile", [(1, 12.7062), (2, 4.3027), (4, 2.7764), (10, 2.2281), (30, 2.0423),
                                         (31, 2.0395), (60, 2.0003), (120, 1.9799), (1000, 1.9623)])
def test_the_t_quantile_at_every_number_of_seeds(df, quantile):
    assert t_quantile(0.975, df) == pytest.approx(quantile, abs=5e-5)


def test_from_32_seeds_on_the_interval_is_still_student_t():
    # 32 paired differences, mean -0.14 pp, sd 1.016 pp: z = 1.96 reads lossless, t(31) = 2.0395 does not
    base = [-0.0014 + 0.01016 * x for x in ([1.0, -1.0] * 16)]
    diff = Stat(base)
    diff.values = [diff.mean + (v - diff.mean) * 0.01016 / diff.sd for v in base]
    assert diff.sd == pytest.approx(0.01016) and diff.mean == pytest.approx(-0.0014)
    assert verdict(diff, 0.005)[0] == "inconclusive"


def test_budget_runs_are_grouped_by_their_target_not_the_ratio_they_ignore(tmp_path):
    write_run(tmp_path, "f0", "full", 0, cost=10.0, acc=0.90)
    for name, ratio in (("a", 0.3), ("b", 0.7)):
        run = write_run(tmp_path, name, "infobatch", 0, cost=8.0, acc=0.89, ratio=ratio)
        summary = json.loads((run / "summary.json").read_text())
        summary["prune"].update(target_saving=0.2, max_ratio=0.6)
        (run / "summary.json").write_text(json.dumps(summary))
    groups = [g for g in group_runs(find_runs([tmp_path])) if g.strategy == "infobatch"]
    assert [(g.label, len(g.runs)) for g in groups] == [("infobatch target_saving=0.2", 2)]


def test_seta_budget_runs_of_two_ratios_stay_apart_the_ratio_still_sizes_its_epoch_0(tmp_path):
    write_run(tmp_path, "f0", "full", 0, cost=10.0, acc=0.90)
    for name, ratio in (("a", 0.1), ("b", 0.3)):
        run = write_run(tmp_path, name, "seta", 0, cost=8.0, acc=0.89, ratio=ratio)
        summary = json.loads((run / "summary.json").read_text())
        summary["prune"].update(target_saving=0.3)
        (run / "summary.json").write_text(json.dumps(summary))
    groups = [g for g in group_runs(find_runs([tmp_path])) if g.strategy == "seta"]
    assert [(g.label, len(g.runs)) for g in groups] == [("seta ratio=0.1 target_saving=0.3", 1),
                                                          ("seta ratio=0.3 target_saving=0.3", 1)]


def test_infobatch_without_a_budget_ignores_max_ratio(tmp_path):
    write_run(tmp_path, "f0", "full", 0, cost=10.0, acc=0.90)
    for name, max_ratio in (("a", 0.6), ("b", 0.8)):
        run = write_run(tmp_path, name, "infobatch", 0, cost=8.0, acc=0.89)
        summary = json.loads((run / "summary.json").read_text())
        summary["prune"].update(target_saving=None, max_ratio=max_ratio)
        (run / "summary.json").write_text(json.dumps(summary))
    groups = [g for g in group_runs(find_runs([tmp_path])) if g.strategy == "infobatch"]
    assert [(g.label, len(g.runs)) for g in groups] == [("infobatch ratio=0.5", 2)]


def test_another_package_s_strategy_says_which_parameters_it_ignores(tmp_path, monkeypatch):
    from infobatch_runner.pruning import Strategy, registry

    class Tempered(Strategy):  # an installed strategy whose temperature only matters with warm=True
        name = "tempered"

        @classmethod
        def ignored_params(cls, params):
            return set() if params.get("warm") else {"temperature"}

    monkeypatch.setattr(registry, "_discovered", lambda: ({"tempered": Tempered}, {}))
    write_run(tmp_path, "f0", "full", 0, cost=10.0, acc=0.90)
    for name, temperature, warm in (("a", 1.0, False), ("b", 2.0, False), ("c", 2.0, True)):
        run = write_run(tmp_path, name, "tempered", 0, cost=8.0, acc=0.89)
        summary = json.loads((run / "summary.json").read_text())
        summary["prune"].update(temperature=temperature, warm=warm)
        (run / "summary.json").write_text(json.dumps(summary))
    groups = [g for g in group_runs(find_runs([tmp_path])) if g.strategy == "tempered"]
    assert sorted((g.label, len(g.runs)) for g in groups) == [
        ("tempered ratio=0.5 warm=False", 2), ("tempered ratio=0.5 warm=True", 1)]  # temperature 1 and 2 pair when cold


def test_a_job_killed_without_a_record_is_listed_as_not_finished(tmp_path, capsys):
    write_run(tmp_path, "0_full", "full", 0, cost=10.0, acc=0.90)
    killed = tmp_path / "1_infobatch"
    (killed / "checkpoints").mkdir(parents=True)
    (killed / "checkpoints" / "last.pt").write_bytes(b"x")
    (killed / "metrics.csv").write_text("epoch,lr\n0,0.1\n1,0.1\n")
    skipped_twin = tmp_path / "2_full"
    (skipped_twin / ".hydra").mkdir(parents=True)
    (skipped_twin / "same_as.json").write_text('{"same_as": "0_full"}\n')
    report = write_report([tmp_path], tmp_path)
    assert [(f.path.name, f.type) for f in report.failed] == [("1_infobatch", "did not finish")]
    assert "metrics.csv (2 epochs) and checkpoints/ (last.pt)" in report.failed[0].error
    text = (tmp_path / "report.md").read_text()
    assert "## Runs that did not finish" in text and "1_infobatch" in text and "## Failed runs" not in text
    main([str(tmp_path)])
    assert "1 run(s) did not finish:" in capsys.readouterr().out


def test_a_run_still_going_is_said_to_be_running(tmp_path):
    import fcntl
    import os

    live = tmp_path / "0_infobatch"
    (live / ".hydra").mkdir(parents=True)
    fd = os.open(live, os.O_RDONLY | os.O_DIRECTORY)
    fcntl.flock(fd, fcntl.LOCK_EX)  # an open file description of its own: as another process holds it
    try:
        failed = []
        find_runs([tmp_path], failed=failed)
    finally:
        os.close(fd)
    assert [f.error for f in failed] == ["still running: another process holds its folder"]


def with_epochs(run, times, kept, spans=None):
    """Rewrite a run's metrics.csv with these epoch times and kept fractions (and its epoch spans)."""
    with open(run / "metrics.csv", "w", newline="") as f:
        w = csv.DictWriter(f, fieldnames=EPOCH_KEYS)
        w.writeheader()
        for e, (t, k) in enumerate(zip(times, kept)):
            w.writerow({"epoch": e, "lr": 0.1, "train/loss": 1.0, "train/kept_fraction": k, "train/epoch_time_s": t,
                        "test/acc": 0.9, "test/loss": 0.5})
    if spans is not None:
        summary = json.loads((run / "summary.json").read_text())
        summary["epoch_spans"] = spans
        (run / "summary.json").write_text(json.dumps(summary))


def test_a_saving_from_the_machine_speeding_up_is_marked_unreliable(tmp_path, capsys):
    # seeds 0, 1, 2 as a full-first sweep measured them: InfoBatch's full-data epochs ran 20% faster
    drift, steady = tmp_path / "drift", tmp_path / "steady"
    for seed in range(3):
        with_epochs(write_run(drift, f"f{seed}", "full", seed, cost=40.0, acc=0.90), [10.0] * 4, [1.0] * 4)
        with_epochs(write_run(drift, f"i{seed}", "infobatch", seed, cost=22.0, acc=0.90), [8.0, 3.0, 3.0, 8.0],
                    [1.0, 0.6, 0.6, 1.0])
        with_epochs(write_run(steady, f"f{seed}", "full", seed, cost=40.0, acc=0.90), [10.0] * 4, [1.0] * 4)
        with_epochs(write_run(steady, f"i{seed}", "infobatch", seed, cost=26.0, acc=0.90), [10.0, 3.0, 3.0, 10.0],
                    [1.0, 0.6, 0.6, 1.0])
    (info,) = [g for g in group_runs(find_runs([drift])) if g.strategy == "infobatch"]
    assert [seed for seed, _ in info.wall_unreliable] == [0, 1, 2]
    assert "ran 20% faster than the baseline's (8.00 s vs 10.00 s)" in info.wall_unreliable[0][1]
    report = write_report([drift], drift)
    (row,) = [r for r in report.rows if r["strategy"] == "infobatch"]
    assert "seed 0" in row["wall_unreliable"] and "drifted" in row["wall_unreliable"]
    assert "Wall saving unreliable" in (drift / "report.md").read_text()
    assert "† wall saving unreliable" in compact_table(report.rows)
    (steady_info,) = [g for g in group_runs(find_runs([steady])) if g.strategy == "infobatch"]
    assert steady_info.wall_unreliable == [], "the same machine speed: nothing to doubt"


def test_jobs_that_ran_at_the_same_time_are_marked(tmp_path):
    full = write_run(tmp_path, "0_full", "full", 0, cost=20.0, acc=0.90)
    info = write_run(tmp_path, "1_infobatch", "infobatch", 0, cost=15.0, acc=0.90)
    other = write_run(tmp_path, "2_infobatch", "infobatch", 1, cost=15.0, acc=0.90, ratio=0.3)
    with_epochs(full, [10.0, 10.0], [1.0, 1.0], spans=[[0, 10], [10, 20]])
    with_epochs(info, [10.0, 5.0], [1.0, 0.5], spans=[[100, 110], [110, 115]])
    with_epochs(other, [10.0, 5.0], [1.0, 0.5], spans=[[112, 122], [122, 127]])  # while 1_infobatch trained
    groups = {g.label: g for g in group_runs(find_runs([tmp_path]))}
    (why,) = [w for _, w in groups["infobatch ratio=0.5"].wall_unreliable]
    assert why == "it or its baseline ran at the same time as 2_infobatch"
    with_epochs(other, [10.0, 5.0], [1.0, 0.5], spans=[[115.5, 125], [125, 130]])  # after it: no overlap
    groups = {g.label: g for g in group_runs(find_runs([tmp_path]))}
    assert groups["infobatch ratio=0.5"].wall_unreliable == []


def test_a_lossless_verdict_says_how_training_fewer_epochs_did(tmp_path):
    """A saving that training fewer epochs also gets losslessly is no achievement of the strategy:
    the report says, beside each lossless verdict, whether a short_schedule run was compared."""
    s = sweep(tmp_path / "s")
    rows = write_report([s], tmp_path / "out").rows
    alone = next(r for r in rows if r["strategy"] == "infobatch")
    assert alone["verdict"] == "lossless" and alone["fewer_epochs"].startswith("not compared: no short_schedule run")
    assert "prune=short_schedule prune.target_saving=0.2" in alone["fewer_epochs"]
    table = compact_table(rows)
    assert "lossless‡" in table and "no fewer-epochs run (short_schedule) was compared" in table
    for seed in range(3):
        write_run(s, f"{seed}_short", "short_schedule", seed, cost=7.0, acc=0.90 - 0.001 * seed)
    rows = write_report([s], tmp_path / "out").rows
    compared = next(r for r in rows if r["strategy"] == "infobatch")
    assert compared["fewer_epochs"].startswith("so is training fewer epochs: short_schedule saving 20% is lossless")
    assert "‡" not in compact_table(rows)
    md = (tmp_path / "out" / "report.md").read_text()
    assert "Against training fewer epochs" in md and "- infobatch ratio=0.5: so is training fewer epochs" in md


def test_the_learning_curves_show_the_spread_over_seeds(tmp_path):
    from infobatch_runner.results.curves import mean_curve, sd_curve

    s = sweep(tmp_path / "s")  # infobatch's final accuracy is 0.900, 0.899, 0.898 over seeds 0, 1, 2
    info = info_group(write_report([s], tmp_path / "out").groups)
    assert sd_curve(info, "test/acc") == pytest.approx([0.001, 0.001])
    assert mean_curve(info, "test/acc") == pytest.approx([0.799, 0.899])
    one = info_group(write_report([sweep(tmp_path / "one", seeds=(0,))], tmp_path / "out1").groups)
    assert sd_curve(one, "test/acc") == [0.0, 0.0]


def test_the_wandb_accuracy_curves_take_their_spread_over_seeds_as_the_plot(tmp_path):
    """A seed run twice is one observation: with seed 0 at 0.900 and 0.890 and seed 1 at 0.899, the
    W&B chart's band is the sd of 0.895 and 0.899 (the plot's and the README's), not of three runs."""
    from infobatch_runner.results.wandb_runs import curve_series

    s = sweep(tmp_path / "s", seeds=(0, 1))
    write_run(s, "0_infobatch_again", "infobatch", 0, cost=6.5, acc=0.890)
    info = info_group(write_report([s], tmp_path / "out").groups)
    keys, xs, ys = curve_series([info])
    series = dict(zip(keys, ys))
    mean, sd = (0.895 + 0.899) / 2, statistics.stdev([0.895, 0.899])
    assert series[info.label][-1] == pytest.approx(100 * mean)
    assert series[info.label + " + sd"][-1] - series[info.label][-1] == pytest.approx(100 * sd)
    assert xs[0] == [1, 2]


def test_the_console_table_keeps_long_labels_apart():
    rows = [{"label": f"epsilon_greedy target_saving={t}", "strategy": "epsilon_greedy", "runs": 3, "seeds": 3,
             "final_acc_mean": 0.9, "final_acc_sd": 0.001, "acc_diff_mean": -0.003, "acc_diff_sd": 0.002,
             "saving_wall_mean": t, "saving_wall_sd": 0.01, "wall_unreliable": "", "saving_samples_mean": t,
             "verdict": "inconclusive", "fewer_epochs": ""} for t in (0.3, 0.5)]
    lines = compact_table(rows).splitlines()
    assert lines[2].startswith("epsilon_greedy target_saving=0.3 ") and lines[3].startswith(
        "epsilon_greedy target_saving=0.5 ")


def test_the_scatter_shows_accuracy_against_both_savings(tmp_path, monkeypatch):
    from infobatch_runner.results import plots

    figures = {}
    save = plots._save
    monkeypatch.setattr(plots, "_save", lambda fig, path: figures.setdefault(path.name, [
        (ax.get_xlabel(), [tuple(c.lines[0].get_xydata()[0]) for c in ax.containers]) for ax in fig.axes
    ]) and save(fig, path))
    s = sweep(tmp_path / "s")
    report = write_report([s], tmp_path / "out")
    info = info_group(report.groups)
    (wall_label, wall_points), (samples_label, sample_points) = figures["accuracy_vs_saving.png"]
    assert wall_label.startswith("wall-clock saving") and samples_label.startswith("sample saving")
    acc = 100 * info.final_acc.mean
    assert wall_points == [pytest.approx((100 * info.saving_wall.mean, acc))]
    assert sample_points == [pytest.approx((100 * info.saving_samples.mean, acc))]
    assert info.saving_samples.mean != info.saving_wall.mean, "two different x positions"


def test_a_report_that_fails_halfway_leaves_the_earlier_one_whole(tmp_path, monkeypatch):
    """The files are a set: written aside, then moved in. A failure (here a full disk while plotting)
    used to leave a new report.md beside the old report.csv."""
    from infobatch_runner.results import report as report_module
    from infobatch_runner.results.report import ReportWriteError

    s = sweep(tmp_path / "s")
    out = tmp_path / "out"
    write_report([s], out)
    before = {p.name: p.read_bytes() for p in out.iterdir()}
    write_run(s, "3_infobatch", "infobatch", 3, cost=6.0, acc=0.80)  # a new run: the next report differs

    def full_disk(*args, **kwargs):
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(report_module, "write_plots", full_disk)
    with pytest.raises(ReportWriteError, match="No space left on device.*the report there is as it was"):
        write_report([s], out)
    assert {p.name: p.read_bytes() for p in out.iterdir()} == before, "nothing replaced, nothing left behind"


def test_a_new_report_removes_the_files_of_the_old_one_it_does_not_write(tmp_path):
    s = sweep(tmp_path / "s")
    for stale in ("setting2_kept_fraction.png", "trials.csv"):  # an earlier report's: two settings, a search
        (s / stale).write_text("old")
    (s / "notes.txt").write_text("mine")
    report = write_report([s], s)
    names = {p.name for p in s.iterdir() if p.is_file()}
    assert "setting2_kept_fraction.png" not in names and "trials.csv" not in names
    assert "notes.txt" in names, "only a report's own files are removed"
    assert {p.name for p in report.files} <= names and not list(s.glob(".report-*"))


def test_the_console_table_of_two_settings_says_whose_each_row_is(tmp_path):
    s = sweep(tmp_path / "s")
    other = dict(SETTING, optimizer={"name": "sgd", "lr": 0.05})
    for seed in (0, 1, 2):
        write_run(s, f"o{seed}_full", "full", seed, cost=10.0, acc=0.91, setting=other)
    report = write_report([s], tmp_path / "out")
    lines = compact_table(report.rows).splitlines()
    fulls = [line for line in lines if " full " in f" {line} " and "baseline" in line]
    assert len(fulls) == 2 and fulls[0].startswith("[1] full") and fulls[1].startswith("[2] full"), lines
    legend = [line for line in lines if line.startswith(("[1] ", "[2] ")) and "baseline" not in line and "runs" not in line]
    assert {line[:4] for line in legend} >= {"[1] ", "[2] "} and all(len(line) > 10 for line in legend)
