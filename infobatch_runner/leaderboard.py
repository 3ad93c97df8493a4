"""`make leaderboard`: which strategy holds up at the saving you want?

One sweep on the `fashion_mnist_quick` recipe (every epoch count from its one config): every
dynamic strategy and the fewer-epochs baseline (short_schedule) at savings of 30, 50 and 70%,
seeds 0, 1, 2, against the full run of each seed. The sweep runs seed by seed, each seed's full run
first (sweeps/order.py), so a drift of the machine's speed falls on no one strategy. Its report
(report.md in the sweep folder) ends each setting with the "Strategies at equal savings" table
and equal_savings.png (results/leaderboard.py). A strategy that cannot reach a saving refuses
that job before training; the table says "unattainable", and the command still succeeds.

    python -m infobatch_runner.leaderboard [overrides...]   # e.g. logger=none, or a tiny dataset
"""

import json
import sys
import time
from pathlib import Path

from infobatch_runner import cli
from infobatch_runner.results.leaderboard import UNREACHABLE

STRATEGIES = ("full", "short_schedule", "infobatch", "seta", "random_dynamic", "rs2", "epsilon_greedy", "ucb")
SAVINGS = (0.3, 0.5, 0.7)
SEEDS = (0, 1, 2)


def command(overrides: list[str], sweep_dir: Path) -> list[str]:
    """The infobatch-run arguments of the protocol; later overrides win (Hydra's rule)."""
    return ["-m", "experiment=fashion_mnist_quick", f"seed={','.join(map(str, SEEDS))}",
            f"prune={','.join(STRATEGIES)}", f"prune.target_saving={','.join(map(str, SAVINGS))}",
            f"hydra.sweep.dir={sweep_dir}", *overrides]


def only_unreachable(sweep_dir: Path) -> bool:
    """True when every job that failed refused a saving its strategy cannot reach."""
    for record in sweep_dir.glob("*/failed.json"):
        try:
            if UNREACHABLE not in json.loads(record.read_text()).get("error", ""):
                return False
        except (OSError, ValueError, AttributeError):
            return False
    return True


def main() -> None:
    overrides = sys.argv[1:]
    given = [o.split("=", 1)[1] for o in overrides if o.startswith("hydra.sweep.dir=")]
    sweep_dir = Path(given[-1] if given else f"outputs/leaderboard/{time.strftime('%Y-%m-%d_%H-%M-%S')}")
    sys.argv = [sys.argv[0], *command([o for o in overrides if not o.startswith("hydra.sweep.dir=")], sweep_dir)]

    def explain() -> str | None:
        if not only_unreachable(sweep_dir):
            return None  # a real failure: the CLI says so and exits 1
        return (f"leaderboard: the failed jobs refused savings their strategies cannot reach; the table says "
                f"\"unattainable\" there. Report: {sweep_dir / 'report.md'}")

    cli.explain_failures = explain
    try:
        cli.main()
    finally:
        cli.explain_failures = None


if __name__ == "__main__":
    main()
