"""`infobatch-report DIR...`: compare the runs of one or more sweeps with their full-data baselines."""

import argparse
import math
import sys
from pathlib import Path

from infobatch_runner.results import trials
from infobatch_runner.results.render import compact_table
from infobatch_runner.results.report import ReportWriteError, write_report
from infobatch_runner.results.runs import UNFINISHED
from infobatch_runner.results.stats import DEFAULT_TOLERANCE


def _fail(message: str) -> None:
    print(f"infobatch-report: error: {message}.", file=sys.stderr)
    sys.exit(2)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(
        prog="infobatch-report",
        description="Compare the runs of one or more sweeps with their full-data baselines: writes report.md, "
                    "report.csv and PNG plots, and prints a compact table.")
    parser.add_argument("dirs", nargs="+", type=Path, help="sweep or run folders (searched recursively)")
    parser.add_argument("--out", type=Path, help="where to write the report (default: the first folder)")
    parser.add_argument("--tolerance", type=float, default=DEFAULT_TOLERANCE,
                        help="accuracy drop still called lossless, as a fraction (default 0.005 = 0.5 pp)")
    args = parser.parse_args(argv)
    if not (math.isfinite(args.tolerance) and args.tolerance >= 0):
        _fail(f"--tolerance must be a finite fraction >= 0 (0.005 = 0.5 pp), not {args.tolerance}")
    missing = [d for d in args.dirs if not d.is_dir()]
    if missing:
        _fail(f"{missing[0]} is not a folder")
    try:
        report = write_report(args.dirs, args.out or args.dirs[0], args.tolerance)
    except ReportWriteError as exc:
        _fail(str(exc))
    except FileNotFoundError as exc:
        _fail(str(exc))
    except OSError as exc:  # e.g. a folder that cannot be listed
        _fail(f"cannot read {exc.filename or ', '.join(map(str, args.dirs))} ({exc.strerror or exc})")
    if report.trials:
        print(trials.console(report.trials) + ("\n" if report.rows else ""))
    if report.rows or not report.trials:
        print(compact_table(report.rows))
    for what, runs in (("failed", [f for f in report.failed if f.type != UNFINISHED]),
                       (UNFINISHED, [f for f in report.failed if f.type == UNFINISHED])):
        if runs:
            print(f"\n{len(runs)} run(s) {what}: " + "; ".join(f"{f.path}: {f.error}" for f in runs))
    if report.skipped:
        print(f"\nskipped {len(report.skipped)} folder(s): "
              + "; ".join(f"{path} ({reason})" for path, reason in report.skipped))
    print("\nwrote " + ", ".join(str(p) for p in report.files))
