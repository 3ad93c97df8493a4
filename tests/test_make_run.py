"""`make run`, the demo, at a tiny size: its own command line (read from the Makefile) ends in a table
that says whether InfoBatch beat training fewer epochs."""

import re
import shlex
from pathlib import Path

from conftest import TINY
from test_cli import run_cli

MAKEFILE = Path(__file__).resolve().parents[1] / "Makefile"


def demo_args() -> list[str]:
    """The infobatch-run arguments of the Makefile's `run` recipe."""
    recipe = re.search(r"^run:.*\n\t(.+)$", MAKEFILE.read_text(), re.MULTILINE).group(1)
    words = shlex.split(recipe)
    return words[[i for i, w in enumerate(words) if w.endswith("infobatch-run")][0] + 1:]


def test_the_demo_compares_infobatch_with_training_fewer_epochs(tmp_path):
    sweep = tmp_path / "demo"
    result = run_cli([*demo_args(), *TINY, f"hydra.sweep.dir={sweep}"], cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    table = result.stdout[result.stdout.index("strategy "):].splitlines()
    rows = {line.split()[0]: line for line in table[2:] if line and not line.startswith(("speedup", "‡"))}
    assert {"full", "infobatch", "short_schedule"} <= set(rows), result.stdout
    # against the curve of the full run and the shorter one: a speedup (or, at this size, a bound)
    assert re.search(r" (<=|>=)?\d+\.\d\dx ", rows["infobatch"]), rows["infobatch"]
    report = (sweep / "report.md").read_text()
    section = report[report.index("### Against training fewer epochs: time to accuracy"):]
    infobatch = next(line for line in section.splitlines() if line.startswith("| infobatch"))
    assert re.search(r"\| (faster|slower) than training fewer epochs|\| inconclusive", infobatch), infobatch
