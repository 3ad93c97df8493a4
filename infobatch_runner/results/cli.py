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


MAX_FRACTION = 0.1  # a fraction above 10 pp of accuracy is a percentage given as a fraction, not a tolerance


def _tolerance(pp: float | None, fraction: float | None) -> float:
    """The tolerance as a fraction, from --tolerance-pp (percentage points) or --tolerance (a
    fraction): one of them, finite, >= 0, and a fraction no larger than MAX_FRACTION, since
    --tolerance 0.5 (50 pp) would call a 23 pp loss lossless."""
    if pp is not None and fraction is not None:
        _fail("give --tolerance-pp or --tolerance, not both")
    if pp is not None:
        if not (math.isfinite(pp) and 0 <= pp <= 100 * MAX_FRACTION):
            _fail(f"--tolerance-pp takes percentage points in [0, {100 * MAX_FRACTION:g}] (0.5 = half a point of "
                  f"accuracy), not {pp:g}")
        return pp / 100
    if fraction is None:
        return DEFAULT_TOLERANCE
    if not (math.isfinite(fraction) and 0 <= fraction <= MAX_FRACTION):
        meant = MAX_FRACTION < fraction <= 100 * MAX_FRACTION  # points given where a fraction is read
        _fail(f"--tolerance is a fraction of accuracy in [0, {MAX_FRACTION:g}] (0.005 = 0.5 pp), not {fraction:g}"
              + (f"; for {fraction:g} percentage points write --tolerance-pp {fraction:g}" if meant else ""))
    return fraction


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(
        prog="infobatch-report",
        description="Compare the runs of one or more sweeps with their full-data baselines: writes report.md, "
                    "report.csv and PNG plots, and prints a compact table.")
    parser.add_argument("dirs", nargs="+", type=Path, help="sweep or run folders (searched recursively)")
    parser.add_argument("--out", type=Path, help="where to write the report (default: the first folder)")
    parser.add_argument("--tolerance-pp", type=float, metavar="PP",
                        help=f"accuracy drop still called lossless, in percentage points (default "
                             f"{100 * DEFAULT_TOLERANCE:g}: a run within 0.5 pp of full data is lossless)")
    parser.add_argument("--tolerance", type=float, metavar="FRACTION",
                        help=f"the same as a fraction of accuracy, at most {MAX_FRACTION:g} (0.005 = 0.5 pp); "
                             "prefer --tolerance-pp")
    args = parser.parse_args(argv)
    tolerance = _tolerance(args.tolerance_pp, args.tolerance)
    missing = [d for d in args.dirs if not d.is_dir()]
    if missing:
        _fail(f"{missing[0]} is not a folder")
    try:
        report = write_report(args.dirs, args.out or args.dirs[0], tolerance)
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
