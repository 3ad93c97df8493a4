"""Copy a finished sweep's records (no checkpoints, no logs) into the repository, so that anyone can
check a published table cell by cell and re-make its report with `infobatch-report DEST`.

    python -m bench.publish outputs/leaderboard/2026-12-06 bench/results/leaderboard/2026-12-06

Kept: the sweep's report.md, report.csv, plots and multirun.yaml; per job its summary.json,
metrics.csv, failed.json or same_as.json, and Hydra's config.yaml and overrides.yaml. A
`make leaderboard` folder (leaderboard.md beside a sweep per regime) is published whole: each
regime's sweep as above, and the table across regimes.
"""

import argparse
import shutil
from pathlib import Path

SWEEP_FILES = ("report.md", "report.csv", "multirun.yaml", "sweep_plan.json")
BOARD_FILES = ("leaderboard.md", "leaderboard.csv", "leaderboard.png")  # results/regimes.py
JOB_FILES = ("summary.json", "metrics.csv", "failed.json", "same_as.json", ".hydra/config.yaml", ".hydra/overrides.yaml")


def publish(sweep: Path, dest: Path) -> list[Path]:
    """The files copied, each at its path relative to the sweep."""
    if (sweep / "leaderboard.md").is_file():
        return publish_board(sweep, dest)
    if not (sweep / "multirun.yaml").is_file():
        raise SystemExit(f"{sweep} is not a sweep folder (no multirun.yaml)")
    copied = []
    wanted = [*SWEEP_FILES, *(p.name for p in sweep.glob("*.png"))]
    for job in sorted(p for p in sweep.iterdir() if p.is_dir() and (p / ".hydra").is_dir()):
        wanted += [f"{job.name}/{f}" for f in JOB_FILES]
    for rel in wanted:
        if (sweep / rel).is_file():
            (dest / rel).parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(sweep / rel, dest / rel)
            copied.append(Path(rel))
    return copied


def publish_board(board: Path, dest: Path) -> list[Path]:
    """A leaderboard across regimes: every regime's sweep, and the table across them."""
    copied = []
    for regime in sorted(p for p in board.iterdir() if (p / "multirun.yaml").is_file()):
        copied += [Path(regime.name) / rel for rel in publish(regime, dest / regime.name)]
    for name in BOARD_FILES:
        if (board / name).is_file():
            dest.mkdir(parents=True, exist_ok=True)
            shutil.copy2(board / name, dest / name)
            copied.append(Path(name))
    return copied


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("sweep", type=Path)
    parser.add_argument("dest", type=Path)
    args = parser.parse_args()
    copied = publish(args.sweep, args.dest)
    print(f"copied {len(copied)} files of {args.sweep} to {args.dest}")


if __name__ == "__main__":
    main()
