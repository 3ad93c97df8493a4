"""`make leaderboard`'s protocol at a tiny size: every dynamic strategy and the fewer-epochs
baseline at three savings over three seeds, seed by seed, ending in the equal-savings table."""

import json
import sys

from infobatch_runner import leaderboard

from conftest import TINY


def test_the_leaderboard_protocol_at_a_tiny_size(tmp_path, monkeypatch, capsys):
    sweep = tmp_path / "board"
    monkeypatch.setattr(sys, "argv", ["leaderboard", *TINY, f"hydra.sweep.dir={sweep}"])
    leaderboard.main()  # returns: the only failures are savings a strategy cannot reach
    captured = capsys.readouterr()
    out = captured.out
    assert "unattainable" in out and "leaderboard: the failed jobs refused savings" in out
    assert "error:" not in captured.err, "expected refusals are explained, not reported as an error first"

    jobs = sorted((p for p in sweep.iterdir() if (p / "summary.json").exists()), key=lambda p: int(p.name.split("_")[0]))
    seeds = [json.loads((p / "summary.json").read_text())["seed"] for p in jobs]
    assert seeds == sorted(seeds), "seed by seed"
    assert json.loads((sweep / "0_full" / "summary.json").read_text())["seed"] == 0, "each seed's baseline first"

    report = (sweep / "report.md").read_text()
    table = report[report.index("### Strategies at equal savings"):].split("\n\n")[2].splitlines()
    assert table[0] == "| strategy | 30% saved | 50% saved | 70% saved |"
    rows = {line.split(" | ")[0].lstrip("| "): line for line in table[2:]}
    assert set(rows) == {"full data (0% saved)", "short_schedule", "infobatch", "seta", "epsilon_greedy", "ucb",
                         "random_dynamic", "rs2"}
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
    assert (sweep / "equal_savings.png").stat().st_size > 0
