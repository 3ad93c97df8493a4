"""Read and validate the runs under some folders: each run folder once (by resolved path and by W&B
run id), every unusable value a one-line reason naming its file and key, failed jobs apart.
"""

import csv
import json
import math
from dataclasses import dataclass
from pathlib import Path

from infobatch_runner.results.folders import HYDRA_OUTPUT, RESULTS, is_held
from infobatch_runner.results.records import VAL_KEYS


CURVE_KEYS = ("test/acc", "train/kept_fraction", "train/epoch_time_s")  # the metrics.csv columns the plots read


class BadRun(ValueError):
    """A run folder this report cannot use; the message says which file and key, in one line."""


@dataclass
class Run:
    path: Path
    summary: dict
    rows: list[dict]

    @property
    def setting_key(self) -> str:
        return json.dumps(self.summary["setting"], sort_keys=True)

    @property
    def is_baseline(self) -> bool:
        return self.summary["strategy"] == "full"

    @property
    def seed(self) -> int:
        return self.summary["seed"]

    @property
    def wandb_id(self) -> str | None:
        info = self.summary.get("wandb")
        run_id = info.get("id") if isinstance(info, dict) else None
        return None if run_id is None else str(run_id)


class FailedRun(tuple):
    """A failed job's folder: a (path, error) pair that also carries the exception type and the
    job's overrides read from its failed.json."""

    def __new__(cls, path: Path, error: str, type: str = "", overrides: tuple[str, ...] = ()):
        self = super().__new__(cls, (path, error))
        self.type, self.overrides = type, tuple(overrides)
        return self

    @property
    def path(self) -> Path:
        return self[0]

    @property
    def error(self) -> str:
        return self[1]


REQUIRED = ("setting", "strategy", "prune", "seed", "time_cost_s", "time_scoring_s", "saving_samples", "final/test_acc")


def _short(value) -> str:
    text = json.dumps(value) if not isinstance(value, float) else repr(value)
    return text if len(text) <= 40 else text[:37] + "..."


def _check_number(summary: dict, key: str, low: float | None = None, high: float | None = None) -> None:
    value = summary[key]
    if value is None:
        raise BadRun(f"summary.json: {key} is null")
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise BadRun(f"summary.json: {key} is {_short(value)}, not a number")
    try:
        finite = math.isfinite(value)
    except OverflowError:  # an integer too large for a float
        finite = False
    if not finite:
        raise BadRun(f"summary.json: {key} is {_short(value)}, not a finite number")
    if (low is not None and value < low) or (high is not None and value > high):
        bounds = f"outside [{low:g}, {high:g}]" if high is not None else f"below {low:g}"
        raise BadRun(f"summary.json: {key} is {value:g}, {bounds}")


def check_summary(summary) -> None:
    """Raise BadRun naming the key when summary.json lacks what the report needs or holds a value
    that would make its statistics wrong (null, a string, NaN, an accuracy outside [0, 1], ...)."""
    if not isinstance(summary, dict):
        kind = "null" if summary is None else type(summary).__name__
        raise BadRun(f"summary.json is not a JSON object but {kind}")
    missing = [k for k in REQUIRED if k not in summary]
    if missing:
        raise BadRun(f"summary.json lacks {', '.join(missing)} (written by another version?)")
    if not isinstance(summary["setting"], dict):
        raise BadRun(f"summary.json: setting is {_short(summary['setting'])}, not an object")
    if not isinstance(summary["strategy"], str):
        raise BadRun(f"summary.json: strategy is {_short(summary['strategy'])}, not a name")
    if not isinstance(summary["prune"], dict):
        raise BadRun(f"summary.json: prune is {_short(summary['prune'])}, not an object")
    if isinstance(summary["seed"], bool) or not isinstance(summary["seed"], int):
        raise BadRun(f"summary.json: seed is {_short(summary['seed'])}, not an integer")
    _check_number(summary, "final/test_acc", 0.0, 1.0)
    _check_number(summary, "time_cost_s", 0.0)
    _check_number(summary, "time_scoring_s", 0.0)
    _check_number(summary, "saving_samples")


def read_rows(path: Path) -> list[dict]:
    """metrics.csv as floats; BadRun naming the line and column of the first value that is not a number.
    The validation columns (absent before they existed) may be empty: NaN, as without a split."""
    try:
        with open(path, newline="", encoding="utf-8") as f:
            reader = csv.DictReader(f)
            header = reader.fieldnames or []
            missing = [k for k in CURVE_KEYS if k not in header]
            if missing:
                raise BadRun(f"metrics.csv lacks the column(s) {', '.join(missing)}")
            rows = []
            for row in reader:
                parsed = {}
                for k, v in row.items():
                    if k is None:
                        raise BadRun(f"metrics.csv line {reader.line_num}: more values than columns")
                    try:
                        parsed[k] = math.nan if k in VAL_KEYS and v == "" else float(v)
                    except (TypeError, ValueError):
                        what = "is missing" if v is None else f"is {v!r}, not a number"
                        raise BadRun(f"metrics.csv line {reader.line_num}: {k} {what}") from None
                rows.append(parsed)
            return rows
    except FileNotFoundError:
        raise BadRun("metrics.csv is missing") from None
    except (csv.Error, UnicodeDecodeError) as exc:
        raise BadRun(f"metrics.csv is not a readable CSV file ({exc})") from None
    except OSError as exc:
        raise BadRun(f"cannot read metrics.csv ({exc.strerror or exc})") from None


def read_run(path: Path) -> Run:
    """The run in a folder; BadRun (a ValueError) with a one-line reason naming the file and key."""
    try:
        summary = json.loads((path / "summary.json").read_text(encoding="utf-8"))
    except OSError as exc:
        raise BadRun(f"cannot read summary.json ({exc.strerror or exc})") from None
    except (ValueError, RecursionError) as exc:
        raise BadRun(f"summary.json is not valid JSON ({exc})") from None
    check_summary(summary)
    return Run(path, summary, read_rows(path / "metrics.csv"))


def read_failed(path: Path) -> FailedRun:
    """A failed job's folder, from its failed.json: {"error": "<one sentence>", "type": "<exception class>",
    "overrides": ["prune=...", ...]}. An unreadable failed.json still makes a failed run, saying so."""
    try:
        data = json.loads((path / "failed.json").read_text(encoding="utf-8"))
    except OSError as exc:
        return FailedRun(path, f"failed.json cannot be read ({exc.strerror or exc})")
    except (ValueError, RecursionError) as exc:
        return FailedRun(path, f"failed.json is not valid JSON ({exc})")
    if not isinstance(data, dict):
        return FailedRun(path, "failed.json is not a JSON object")
    error = data.get("error")
    error = " ".join(str(error).split()) if error not in (None, "") else "no error message recorded in failed.json"
    kind = data.get("type")
    overrides = data.get("overrides")
    overrides = [str(o) for o in overrides] if isinstance(overrides, list) else []
    return FailedRun(path, error, str(kind) if kind else "", overrides)


UNFINISHED = "did not finish"  # the FailedRun.type of a job folder that holds neither record


def _folders(dirs: list[Path]) -> list[tuple[Path, bool, bool]]:
    """Every job folder under dirs, once each however often it is reached (compared by resolved
    path), in sorted order: (path as found, has summary.json, has failed.json). A job folder holds a
    summary.json, a failed.json, or what a job writes before them (folders.RESULTS, Hydra's record)."""
    found: dict[Path, Path] = {}
    for d in dirs:
        for name in (*RESULTS, HYDRA_OUTPUT):
            for marker in Path(d).rglob(name):
                if marker.is_file() or (marker.is_dir() and name in ("checkpoints", HYDRA_OUTPUT)):
                    found.setdefault(marker.parent.resolve(), marker.parent)
    return [(found[key], (key / "summary.json").is_file(), (key / "failed.json").is_file()) for key in sorted(found)]


def unfinished(path: Path) -> FailedRun | None:
    """A job folder that holds neither summary.json nor failed.json: killed (OOM, SIGKILL, a time
    limit) before it could record anything, or still running. None for a sweep job skipped as a
    repeat (same_as.json: its results are its twin's)."""
    if (path / "same_as.json").exists():
        return None
    if is_held(path):
        return FailedRun(path, "still running: another process holds its folder", UNFINISHED)
    left = []
    if (path / "metrics.csv").is_file():
        try:
            epochs = max(0, len((path / "metrics.csv").read_text(encoding="utf-8", errors="replace").splitlines()) - 1)
            left.append(f"metrics.csv ({epochs} epoch{'s' if epochs != 1 else ''})")
        except OSError as exc:
            left.append(f"metrics.csv (unreadable: {exc.strerror or exc})")
    if (path / "checkpoints").is_dir():
        names = sorted(p.name for p in (path / "checkpoints").glob("*.pt"))
        left.append("checkpoints/" + (" (" + ", ".join(names) + ")" if names else " (empty)"))
    if not left:
        left.append("only Hydra's record of its config (.hydra/)")
    return FailedRun(path, "left " + " and ".join(left) + "; no summary.json nor failed.json (killed, out of memory "
                     "or out of time?); continue it with resume=auto", UNFINISHED)


def find_runs(dirs: list[Path], skipped: list[tuple[Path, str]] | None = None,
              failed: list[FailedRun] | None = None) -> list[Run]:
    """Every run folder under dirs, each counted once: the same folder reached twice (compared by
    resolved path) and a second folder holding the same W&B run id (a copy; the first in sorted path
    order is kept) count once. Folders whose files are unreadable or hold unusable values go to
    `skipped` as (path, reason); folders of failed jobs (failed.json, no summary.json) to `failed`, and
    so do those of jobs that did not finish (neither record; their type is UNFINISHED)."""
    runs: list[Run] = []
    by_wandb_id: dict[str, Run] = {}
    for path, has_summary, has_failed in _folders(dirs):
        if not has_summary:
            if failed is not None:
                record = read_failed(path) if has_failed else unfinished(path)
                if record is not None:
                    failed.append(record)
            continue
        try:
            run = read_run(path)
        except BadRun as exc:
            if skipped is not None:
                skipped.append((path, str(exc)))
            continue
        first = by_wandb_id.get(run.wandb_id) if run.wandb_id is not None else None
        if first is not None:
            if skipped is not None:
                skipped.append((path, f"duplicate of {first.path} (same W&B run id {run.wandb_id})"))
            continue
        if run.wandb_id is not None:
            by_wandb_id[run.wandb_id] = run
        runs.append(run)
    return runs
