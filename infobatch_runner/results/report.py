"""Write a comparison: read the runs, pair and group them, then report.md, report.csv and the plots
into one folder, and fill each run's summary.json with the wall-clock saving its baseline now gives
and its figures against the full-data budget curve.
A search's trials are one table instead (trials.py, trials.csv).
"""

import csv
import logging
import math
import os
import re
import shutil
import tempfile
from dataclasses import dataclass, field
from pathlib import Path

from infobatch_runner.results import leaderboard, trials
from infobatch_runner.results.budget import CURVE_STRATEGIES, against_curves, curve_key, curves_of, run_figures
from infobatch_runner.results.folders import SWEEP_PLAN, SWEEP_RECORD
from infobatch_runner.results.pairing import Group, against, baselines, group_runs
from infobatch_runner.results.plots import plotted_settings, prefix, write_plots
from infobatch_runner.results.records import write_json_atomic
from infobatch_runner.results.render import CSV_COLUMNS, markdown, rows_of
from infobatch_runner.results.runs import FailedRun, Run, find_runs
from infobatch_runner.results.stats import DEFAULT_TOLERANCE

log = logging.getLogger(__name__)


class ReportWriteError(OSError):
    """The report's files could not be written (out folder not creatable or not writable)."""


@dataclass
class Report:
    groups: list[Group]
    rows: list[dict]
    files: list[Path]
    skipped: list[tuple[Path, str]]  # (folder, why it is in no statistic)
    updated: list[Run]  # runs whose saving_wall or budget-curve figures this report filled in
    failed: list[FailedRun] = field(default_factory=list)  # (folder, error) of the jobs that wrote failed.json
    trials: list[dict] = field(default_factory=list)  # a search's trials, best first (trials.py)


def write_report(dirs: list[Path], out_dir: Path, tolerance: float = DEFAULT_TOLERANCE) -> Report:
    """report.md, report.csv and the plots in out_dir. FileNotFoundError when dirs hold neither a run
    nor a failed job; ReportWriteError (an OSError) when out_dir cannot be created or written."""
    if not (isinstance(tolerance, (int, float)) and math.isfinite(tolerance) and tolerance >= 0):
        raise ValueError(f"the tolerance must be a finite fraction >= 0, not {tolerance}")
    skipped: list[tuple[Path, str]] = []
    failed: list[FailedRun] = []
    runs = find_runs(dirs, skipped, failed)
    if not runs and not failed:
        why = ""
        if skipped:
            more = f" (and {len(skipped) - 1} more)" if len(skipped) > 1 else ""
            why = f"; skipped {skipped[0][0]}: {skipped[0][1]}{more}"
        raise FileNotFoundError(f"no readable run folders (summary.json + metrics.csv) under "
                                f"{', '.join(map(str, dirs))}{why}")
    trial_rows = trials.trial_rows([r for r in runs if trials.is_trial(r.summary)])
    compared = [r for r in runs if not trials.is_trial(r.summary)]
    groups = group_runs(compared)
    against_curves(groups, compared)
    rows = rows_of(groups, tolerance)
    out_dir = Path(out_dir)
    try:  # the files are written aside first, then moved in together: a failure leaves the old report whole
        out_dir.mkdir(parents=True, exist_ok=True)
        staging = Path(tempfile.mkdtemp(prefix=".report-", dir=out_dir))
    except OSError as exc:
        raise ReportWriteError(f"cannot write the report to {out_dir} ({exc.strerror or exc})") from exc
    try:
        try:
            (staging / "report.md").write_text(markdown(groups, tolerance, skipped, failed,
                                                        trials.markdown(trial_rows)), encoding="utf-8")
            tables = []
            if rows or not trial_rows:
                tables.append(_write_csv(staging / "report.csv", CSV_COLUMNS, rows))
            if trial_rows:
                tables.append(_write_csv(staging / "trials.csv", trials.columns(trial_rows), trial_rows))
            plots = write_plots(groups, staging)
            settings = plotted_settings(groups)
            for i, key in enumerate(settings):  # strategies at equal savings, where runs asked for targets
                mine = [g for g in groups if g.setting_key == key]
                drawn = leaderboard.plot(mine, failed, tolerance, staging / f"{prefix(settings, i)}equal_savings.png")
                plots += [drawn] if drawn else []
            written = [staging / "report.md", *tables, *plots]
        except OSError as exc:
            raise ReportWriteError(f"cannot write the report to {out_dir} ({exc.strerror or exc}); the report there "
                                   "is as it was") from exc
        try:
            _move_in(written, out_dir)
        except OSError as exc:
            raise ReportWriteError(f"cannot write the report to {exc.filename or out_dir} ({exc.strerror or exc})") \
                from exc
    finally:
        shutil.rmtree(staging, ignore_errors=True)  # whatever failed, nothing half-written stays behind
    updated = fill_paired_figures(runs)
    files = [out_dir / p.name for p in written]
    return Report(groups, rows, files, skipped, updated, failed, trial_rows)


# The files a report writes (report.md, its tables, its plots, per setting or not): a new report
# removes those of an earlier one that it does not write again, and nothing else in the folder.
REPORT_FILE = re.compile(r"(report\.md|report\.csv|trials\.csv|(setting\d+_)?(accuracy_vs_saving|accuracy_curves|"
                         r"kept_fraction|accuracy_vs_cost|equal_savings)\.png)")


def _move_in(written: list[Path], out_dir: Path) -> None:
    """The new report's files into out_dir (each replaced whole), then the earlier report's files it
    does not write again removed (a per-setting report leaves no stale single-setting plot)."""
    names = {p.name for p in written}
    for path in written:
        os.replace(path, out_dir / path.name)
    for old in out_dir.iterdir():
        if REPORT_FILE.fullmatch(old.name) and old.name not in names and old.is_file():
            old.unlink()


def _write_csv(path: Path, columns: list[str], rows: list[dict]) -> Path:
    with open(path, "w", newline="", encoding="utf-8") as f:
        writer = csv.DictWriter(f, fieldnames=columns)
        writer.writeheader()
        writer.writerows(rows)
    return path


def sweep_of(path: Path) -> Path | None:
    """The sweep folder a run folder belongs to (the nearest folder above it holding a sweep's
    multirun.yaml or sweep_plan.json), or None for a run of its own."""
    for folder in Path(path).resolve().parents:
        if (folder / SWEEP_RECORD).is_file() or (folder / SWEEP_PLAN).is_file():
            return folder
    return None


def fill_paired_figures(runs: list[Run]) -> list[Run]:
    """Write into the summary.json of each run what its pairings now tell: the wall-clock saving
    against its baseline, and its figures against its seed's full-data budget curve (budget.py);
    returns the runs written. Only within one sweep: a run is written into when it and every run it
    is paired with belong to the same sweep, never when a report pairs it with full runs made
    elsewhere (another sweep, another time: its summary would then claim what its own sweep never
    measured). A run folder that cannot be written is warned about and left as it is."""
    base = baselines(runs)
    curves = curves_of(runs)
    updated = []
    for run in runs:
        sweep = sweep_of(run.path)
        if run.is_baseline or sweep is None:
            continue
        known = {}
        b = base.get((run.setting_key, run.seed))
        if b is not None and run.summary.get("saving_wall") is None and all(sweep_of(r.path) == sweep for r in b.members):
            paired = against(run.summary, b)
            if paired["saving_wall"] is not None:  # the baseline's cost is 0: nothing to fill in
                known.update(paired)
        members = curves.get((curve_key(run.summary["setting"]), run.seed), [])
        if run.summary["strategy"] not in CURVE_STRATEGIES and all(sweep_of(r.path) == sweep for r in members):
            known.update(run_figures(run, members))
        if all(run.summary.get(k) == v for k, v in known.items()):
            continue
        try:
            write_json_atomic(run.path / "summary.json", {**run.summary, **known})
        except OSError as exc:
            log.warning("could not write %s into %s (%s); left as it is", ", ".join(known),
                        run.path / "summary.json", exc.strerror or exc)
            continue
        run.summary.update(known)
        updated.append(run)
    return updated
