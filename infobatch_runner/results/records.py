"""A run's local records, the source of truth: metrics.csv (one row per epoch, EPOCH_KEYS) and
summary.json (the run's totals), written so that a failed write never loses what was there.
"""

import csv
import json
import math
import os
from pathlib import Path

from infobatch_runner.errors import UserError


EPOCH_KEYS = ("epoch", "lr", "train/loss", "train/kept_fraction", "train/epoch_time_s", "test/acc", "test/loss",
              "val/acc", "val/loss")
VAL_KEYS = ("val/acc", "val/loss")  # NaN without a validation split (dataset.val_fraction=0)
# The columns of earlier versions (no validation split): still read, their rows given NaN val columns.
EPOCH_KEYS_BEFORE_VAL = tuple(k for k in EPOCH_KEYS if k not in VAL_KEYS)


def write_json_atomic(path: Path, data: dict) -> None:
    """Write `data` beside `path` and rename it over `path`: a failed write leaves `path` as it was."""
    tmp = path.with_name(path.name + ".tmp")
    try:
        tmp.write_text(json.dumps(data, indent=2, sort_keys=True) + "\n")
        os.replace(tmp, path)
    except OSError:
        tmp.unlink(missing_ok=True)
        raise


def _cannot_write(path: Path, exc: OSError) -> UserError:
    return UserError(f"cannot write {path} ({exc.strerror or exc}); free some space or make the folder writable, "
                     f"then continue with resume=auto.")


def read_summary(path: Path) -> dict | None:
    """A run folder's summary.json as a dict, or None when it is missing or unreadable (a write cut
    short by a kill or a full disk): then the run is not finished, whatever its checkpoint says."""
    try:
        summary = json.loads((Path(path) / "summary.json").read_text(encoding="utf-8"))
    except (OSError, ValueError, RecursionError):
        return None
    return summary if isinstance(summary, dict) else None


def read_metrics(path: Path) -> list[dict]:
    """The rows of a metrics.csv this tool wrote ([] when there is none), each value a number;
    a row it did not write is one sentence, before anything is changed."""
    if not path.exists():
        return []
    try:
        with open(path, newline="") as f:
            reader = csv.DictReader(f)
            if reader.fieldnames is None:
                return []
            if tuple(reader.fieldnames) not in (EPOCH_KEYS, EPOCH_KEYS_BEFORE_VAL):
                raise UserError(f"{path} does not have the columns this tool writes ({', '.join(EPOCH_KEYS)}); "
                                "move it away or choose another hydra.run.dir.")
            rows = []
            for line, row in enumerate(reader, start=2):
                try:
                    rows.append({**{k: math.nan for k in VAL_KEYS},
                                 **{k: int(v) if k == "epoch" else math.nan if k in VAL_KEYS and v == "" else float(v)
                                    for k, v in row.items()}})
                except (TypeError, ValueError):
                    raise UserError(f"{path} line {line} is not a row this tool wrote ({', '.join(map(str, row.values()))}"
                                    "); delete that line or choose another hydra.run.dir.") from None
            return rows
    except (OSError, UnicodeDecodeError) as exc:
        raise UserError(f"cannot read {path} ({getattr(exc, 'strerror', None) or exc}).") from None


class LocalTracker:
    def __init__(self, run_dir: Path, resume_from_epoch: int = 0):
        self.metrics_path = run_dir / "metrics.csv"
        self.summary_path = run_dir / "summary.json"
        try:
            run_dir.mkdir(parents=True, exist_ok=True)
            self._keep_rows_done(resume_from_epoch)
            new = not self.metrics_path.exists()
            self._file = open(self.metrics_path, "a", newline="")
            self._writer = csv.DictWriter(self._file, fieldnames=EPOCH_KEYS)
            if new:
                self._writer.writeheader()
                self._file.flush()
        except OSError as exc:
            raise _cannot_write(self.metrics_path, exc) from None

    def _keep_rows_done(self, epoch: int) -> None:
        """A resumed run rewrites the epochs after its checkpoint (`epoch` done, rows numbered from 1):
        drop their rows, if any were written."""
        rows = [r for r in read_metrics(self.metrics_path) if r["epoch"] <= epoch]
        if not self.metrics_path.exists():
            return
        tmp = self.metrics_path.with_name("metrics.csv.tmp")
        try:
            with open(tmp, "w", newline="") as f:
                writer = csv.DictWriter(f, fieldnames=EPOCH_KEYS)
                writer.writeheader()
                writer.writerows(rows)
            os.replace(tmp, self.metrics_path)
        except OSError:
            tmp.unlink(missing_ok=True)
            raise

    def log_epoch(self, row: dict) -> None:
        try:
            self._writer.writerow({k: row[k] for k in EPOCH_KEYS})
            self._file.flush()
        except OSError as exc:
            raise _cannot_write(self.metrics_path, exc) from None

    def log_summary(self, summary: dict) -> None:
        try:
            write_json_atomic(self.summary_path, summary)
        except OSError as exc:
            raise _cannot_write(self.summary_path, exc) from None

    def finish(self) -> None:
        try:
            self._file.close()
        except OSError:
            pass  # a failed flush was already reported by the write that failed
