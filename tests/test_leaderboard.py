"""`make leaderboard`'s protocol at a tiny size: two regimes, each with every dynamic strategy and the
fewer-epochs baseline at three savings, seed by seed (three seeds in the short regime, one in the
long: each regime takes its own), each ending in its equal-savings table, and the table across
regimes with the speedups against each regime's curve."""

import csv
import json
import sys

import pytest

from infobatch_runner import leaderboard

from conftest import TINY

LONG = "trainer.epochs=5 dataset.limit_train=192"  # the long regime at a tiny size: more epochs, fewer samples


@pytest.fixture(scope="module")
def board(tmp_path_factory):
    sweep = tmp_path_factory.mktemp("board")
    argv = sys.argv
    sys.argv = ["leaderboard", *TINY, "trainer.warmup_steps=0", "trainer.checkpoint_every=0", f"hydra.sweep.dir={sweep}",
                "--seeds", "0,1,2", "--long-seeds", "0", "--long", LONG]  # the long regime's own seeds
    try:
        leaderboard.main()  # returns: the only failures are savings a strategy cannot reach
    finally:
        sys.argv = argv
    return sweep


def test_each_regime_is_a_sweep_seed_by_seed_with_its_equal_savings_table(board):
    for regime, epochs, n, seeds in (("short", 3, 256, {0, 1, 2}), ("long", 5, 192, {0})):
        sweep = board / regime
        jobs = sorted((p for p in sweep.iterdir() if (p / "summary.json").exists()),
                      key=lambda p: int(p.name.split("_")[0]))
        summaries = [json.loads((p / "summary.json").read_text()) for p in jobs]
        assert [s["seed"] for s in summaries] == sorted(s["seed"] for s in summaries), "seed by seed"
        assert {s["seed"] for s in summaries} == seeds, "each regime its own seeds"
        assert summaries[0]["strategy"] == "full" and summaries[0]["seed"] == 0, "each seed's baseline first"
        assert {(s["epochs"], s["num_train"]) for s in summaries} == {(epochs, n)}, "the regime's own overrides win"
        report = (sweep / "report.md").read_text()
        table = report[report.index("### Strategies at equal savings"):].split("\n\n")[2].splitlines()
        assert table[0] == "| strategy | 30% saved | 50% saved | 70% saved |"
        rows = {line.split(" | ")[0].lstrip("| "): line for line in table[2:]}
        assert set(rows) == {"full data (0% saved)", "short_schedule", "infobatch", "seta", "epsilon_greedy", "ucb",
                             "random_dynamic", "rs2"}
        assert (sweep / "equal_savings.png").stat().st_size > 0
        assert (sweep / "accuracy_vs_cost.png").stat().st_size > 0, "the regime's full-data curve has budgets"


def test_the_short_regime_table_cells(board):
    report = (board / "short" / "report.md").read_text()
    table = report[report.index("### Strategies at equal savings"):].split("\n\n")[2].splitlines()
    rows = {line.split(" | ")[0].lstrip("| "): line for line in table[2:]}
    # 3 epochs, delta 0.875: InfoBatch prunes one epoch, at most 0.6 of it: 0.2 at most
    assert rows["infobatch"].count("unattainable") == 3
    for name in ("rs2", "epsilon_greedy", "ucb"):
        assert rows[name].count(" [") == 3, f"{name}: a 95% CI in every cell"
    # SeTa's epoch 0 and partial annealing keep floor(0.9 x 256) = 230, its one window epoch at least 1:
    # (2 x 26 + 255) / 768 = 0.40 at most
    assert rows["seta"].count(" [") == 1 and rows["seta"].count("unattainable") == 2

    per_seed = report[report.index("Per seed, the values behind each cell"):].split("\n\n")[1].splitlines()[2:]
    cells = [line.strip("| ").split(" | ") for line in per_seed]
    assert [c[2] for c in cells if c[0] == "full data"] == ["0", "1", "2"]
    for name in ("ucb", "seta"):
        deltas = [float(c[5]) for c in cells if c[0] == name and c[1] == "30%"]
        shown = float(rows[name].split(" | ")[1].split("<br>Δ ")[1].split()[0])
        assert len(deltas) == 3 and abs(sum(deltas) / 3 - shown) <= 0.01, f"{name}: the cell is the mean of its seeds"
    assert "(saves 33.3%)" in rows["short_schedule"], "whole epochs: 2 of 3 trained for 30% and 50%"


def test_the_table_across_regimes_carries_each_regimes_figures(board, capsys):
    text = (board / "leaderboard.md").read_text()
    table = [line for line in text.splitlines() if line.startswith("| ")]
    assert table[0] == ("| strategy | 3 ep · 30% saved | 3 ep · 50% saved | 3 ep · 70% saved | "
                        "5 ep · 30% saved | 5 ep · 50% saved | 5 ep · 70% saved |")
    rows = {line.split(" | ")[0].lstrip("| "): line.split(" | ")[1:] for line in table[1:]}
    assert set(rows) == {"short_schedule", "infobatch", "seta", "epsilon_greedy", "ucb", "random_dynamic", "rs2"}
    assert rows["infobatch"][:3] == ["unattainable"] * 3
    # the short schedule is the curve; savings that round to the same whole epochs are one run, shown
    # once: 30% and 50% of 3 epochs both train 2, 50% and 70% of 5 both train 2 (their twins: "—")
    cells = [c.rstrip(" |") for c in rows["short_schedule"]]
    assert [i for i, c in enumerate(cells) if "time on the curve" in c] == [0, 2, 3, 4], cells
    assert cells[1] == cells[5] == "—"

    # every figure equals the regime's own report.csv: the same pairing, the same curve
    board_rows = list(csv.DictReader(open(board / "leaderboard.csv", encoding="utf-8")))
    checked = 0
    for regime in ("short", "long"):
        own = {r["label"]: r for r in csv.DictReader(open(board / regime / "report.csv", encoding="utf-8"))}
        for row in board_rows:
            if row["regime"].startswith(("3 ", "5 ")[regime == "long"]) and row["unattainable"] == "False":
                label = f"{row['strategy']} target_saving={float(row['target_saving']):g}"
                mine = own[label]
                assert float(row["acc_diff_pp"]) == pytest.approx(100 * float(mine["acc_diff_mean"]))
                if row["strategy"] != "short_schedule":
                    assert row["speedup_wall_relation"] == mine["speedup_wall_relation"]
                    assert float(row["speedup_wall"]) == pytest.approx(float(mine["speedup_wall"]))
                    assert float(row["speedup_samples"]) == pytest.approx(float(mine["speedup_samples"]))
                    checked += 1
    assert checked >= 20
    assert (board / "leaderboard.png").stat().st_size > 0


def test_a_regime_too_short_for_a_saving_gives_unattainable_cells_not_a_refused_sweep(tmp_path):
    """One epoch: no number of whole epochs saves 30, 50 or 70% of it, and InfoBatch prunes no epoch.
    Those jobs fail alone, and the table says "unattainable"; the sweep used to be refused whole."""
    argv = sys.argv
    sys.argv = ["leaderboard", *TINY, "trainer.epochs=1", "trainer.warmup_steps=0", "trainer.checkpoint_every=0",
                f"hydra.sweep.dir={tmp_path}", "--seeds", "0", "--strategies", "infobatch", "--long", "trainer.epochs=2"]
    try:
        leaderboard.main()
    finally:
        sys.argv = argv
    table = [line for line in (tmp_path / "leaderboard.md").read_text().splitlines() if line.startswith("| ")]
    rows = {line.split(" | ")[0].lstrip("| "): line.split(" | ")[1:] for line in table[1:]}
    assert rows["short_schedule"][:3] == ["unattainable"] * 3, rows["short_schedule"]
    assert rows["infobatch"][:3] == ["unattainable"] * 3


@pytest.mark.parametrize("argv, short, long", [
    ([], [0, 1, 2, 3], [0, 1, 2, 3, 4, 5]),  # the long regime's spread needs more seeds for the same CI
    (["--seeds", "0,1"], [0, 1], [0, 1]),  # one seed list given: both regimes
    (["--seeds", "0", "--long-seeds", "1,2"], [0], [1, 2]),
    (["--long-seeds", "7"], [0, 1, 2, 3], [7]),
])
def test_each_regime_has_its_own_seeds(argv, short, long):
    args, overrides = leaderboard.parse([*argv, "logger=none"])
    assert (args.seeds, args.long_seeds, overrides) == (short, long, ["logger=none"])


def test_seeds_that_are_not_integers_are_one_sentence(capsys):
    with pytest.raises(SystemExit) as stop:
        leaderboard.parse(["--long-seeds", "0,one"])
    assert stop.value.code == 2 and "--long-seeds takes comma-separated integers, not '0,one'" in capsys.readouterr().err


def test_any_registered_strategy_at_any_savings_beside_the_baselines_that_always_run():
    args, overrides = leaderboard.parse(["--strategies", "seta,full,my_method", "--savings", "0.25,0.6"])
    argv = leaderboard.command(overrides, "out", args.seeds, args.strategies, args.savings)
    assert "prune=full,short_schedule,seta,my_method" in argv and "prune.target_saving=0.25,0.6" in argv
    default = leaderboard.command([], "out")
    assert "prune=full,short_schedule,infobatch,seta,random_dynamic,rs2,epsilon_greedy,ucb" in default
    assert "prune.target_saving=0.3,0.5,0.7" in default


@pytest.mark.parametrize("savings", ["0.3,half", "0.3,1.0"])
def test_savings_outside_zero_to_one_are_one_sentence(capsys, savings):
    with pytest.raises(SystemExit) as stop:
        leaderboard.parse(["--savings", savings])
    assert stop.value.code == 2 and "--savings takes comma-separated numbers in (0, 1)" in capsys.readouterr().err


def test_a_speedup_whose_seeds_bound_it_both_ways_has_no_mean_in_the_table_across_regimes():
    """As in each regime's report.csv: one seed above the curve and one below tell no mean. The table
    across regimes used to write their average (1.25 here) beside an empty relation."""
    import math
    from types import SimpleNamespace

    from infobatch_runner.results import regimes
    from infobatch_runner.results.budget import AT_LEAST, AT_MOST, Against, Bounded
    from infobatch_runner.results.stats import Stat

    budget = Against(budgets=4)
    budget.speedup["wall"].values += [Bounded(1.6, AT_LEAST), Bounded(0.9, AT_MOST)]
    budget.speedup["samples"].values += [Bounded(1.2), Bounded(1.3)]
    g = SimpleNamespace(acc_diff=Stat([0.001, 0.002]), final_acc=Stat([0.9, 0.91]), saving_samples=Stat([0.3, 0.3]),
                        budget=budget)
    regime = SimpleNamespace(name="8 epochs, 60,000 samples", epochs=8, num_train=60000,
                             table=SimpleNamespace(cells={("ucb", 0.3): g}))
    (row,) = regimes.rows([regime])
    assert math.isnan(row["speedup_wall"]) and row["speedup_wall_relation"] == ""
    assert row["speedup_samples"] == pytest.approx(1.25) and row["speedup_samples_relation"] == "="


def test_the_equal_savings_plot_marks_both_baselines(board, monkeypatch, tmp_path):
    """Δacc is against full data (the zero line) and training fewer epochs is the rival: both in the legend."""
    import matplotlib.pyplot as plt

    from infobatch_runner.results import leaderboard as equal_savings
    from infobatch_runner.results.pairing import group_runs
    from infobatch_runner.results.runs import find_runs

    failed, figures = [], []
    runs = find_runs([board / "short"], [], failed)
    monkeypatch.setattr(plt, "close", figures.append)
    assert equal_savings.plot(group_runs(runs), failed, 0.005, tmp_path / "plot.png") is not None
    labels = figures[0].axes[0].get_legend_handles_labels()[1]
    assert "full data" in labels and "short_schedule (fewer epochs)" in labels, labels
