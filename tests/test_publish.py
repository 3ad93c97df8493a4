"""bench/publish.py: a published sweep's records, without its checkpoints and logs."""

import json
import os
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def publish(*args: Path) -> subprocess.CompletedProcess:
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    return subprocess.run([sys.executable, "-m", "bench.publish", *map(str, args)], cwd=ROOT, env=env,
                          capture_output=True, text=True, timeout=120)


def test_a_sweeps_records_are_copied_and_its_checkpoints_are_not(tmp_path):
    sweep, dest = tmp_path / "sweep", tmp_path / "published"
    for job in ("0_full", "1_seta"):
        (sweep / job / ".hydra").mkdir(parents=True)
        (sweep / job / ".hydra" / "config.yaml").write_text("prune: {name: seta}\n")
        (sweep / job / "checkpoints").mkdir()
        (sweep / job / "checkpoints" / "last.pt").write_bytes(b"weights")
        (sweep / job / f"{job}.log").write_text("epoch 1/8 ...\n")
    (sweep / "0_full" / "summary.json").write_text(json.dumps({"final/test_acc": 0.9}))
    (sweep / "0_full" / "metrics.csv").write_text("epoch\n1\n")
    (sweep / "1_seta" / "failed.json").write_text(json.dumps({"error": "cannot be reached"}))
    for name in ("multirun.yaml", "report.md", "report.csv", "equal_savings.png"):
        (sweep / name).write_text(name)

    result = publish(sweep, dest)
    assert result.returncode == 0, result.stderr
    copied = sorted(str(p.relative_to(dest)) for p in dest.rglob("*") if p.is_file())
    assert copied == ["0_full/.hydra/config.yaml", "0_full/metrics.csv", "0_full/summary.json",
                      "1_seta/.hydra/config.yaml", "1_seta/failed.json", "equal_savings.png", "multirun.yaml",
                      "report.csv", "report.md"]

    not_a_sweep = publish(sweep / "0_full", dest)
    assert not_a_sweep.returncode != 0 and "is not a sweep folder" in not_a_sweep.stderr


def test_a_leaderboard_across_regimes_is_published_whole(tmp_path):
    board, dest = tmp_path / "board", tmp_path / "published"
    for regime in ("short", "long"):
        (board / regime / "0_full" / ".hydra").mkdir(parents=True)
        (board / regime / "0_full" / "summary.json").write_text("{}")
        (board / regime / "0_full" / "checkpoints").mkdir()
        (board / regime / "0_full" / "checkpoints" / "last.pt").write_bytes(b"weights")
        (board / regime / "multirun.yaml").write_text("x")
    for name in ("leaderboard.md", "leaderboard.csv", "leaderboard.png"):
        (board / name).write_text(name)

    result = publish(board, dest)
    assert result.returncode == 0, result.stderr
    copied = sorted(str(p.relative_to(dest)) for p in dest.rglob("*") if p.is_file())
    assert copied == ["leaderboard.csv", "leaderboard.md", "leaderboard.png", "long/0_full/summary.json",
                      "long/multirun.yaml", "short/0_full/summary.json", "short/multirun.yaml"]
