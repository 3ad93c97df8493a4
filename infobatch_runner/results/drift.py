"""Is a wall-clock saving the strategy's, or the machine's? Two checks on each paired seed.

A wall saving compares a run's time with its baseline's, measured at other moments. On a shared
machine the speed drifts (+-20% here) and a sweep that runs all full jobs first, then the others,
puts the whole drift on one strategy; jobs launched together (hydra/launcher=local) slow each
other down. Both are seen in the runs' own records:
- drift: the run's full-data epochs (train/kept_fraction 1: InfoBatch's first and annealing
  epochs, for instance) against the baseline's, seconds per epoch on the same data; more than
  DRIFT_TOLERANCE apart, the machine was not the same machine.
- overlap: the wall-clock spans of the epochs (summary `epoch_spans`) of the run or its baseline
  intersect another run's: they shared the machine.
A seed with either has its wall saving marked unreliable, with the figure; Δacc is unaffected.
"""

import statistics
from pathlib import Path

DRIFT_TOLERANCE = 0.10


def full_epoch_seconds(run) -> float | None:
    """Mean seconds of the run's full-data epochs; None when it has none."""
    times = [r["train/epoch_time_s"] for r in run.rows if r["train/kept_fraction"] >= 1 - 1e-9]
    return statistics.fmean(times) if times else None


def spans(run) -> list[tuple[float, float]]:
    """The wall-clock (start, end) of each of the run's epochs; [] for runs of earlier versions."""
    found = run.summary.get("epoch_spans")
    if not isinstance(found, list):
        return []
    return [(float(s[0]), float(s[1])) for s in found
            if isinstance(s, (list, tuple)) and len(s) == 2 and all(isinstance(x, (int, float)) for x in s)]


def overlapping(runs) -> dict[Path, list[Path]]:
    """For each run, the other runs (other folders) whose epochs ran while any of its own did."""
    timed = [(r.path, sorted(spans(r))) for r in runs]
    timed = [(p, s) for p, s in timed if s]
    found: dict[Path, list[Path]] = {p: [] for p, _ in timed}
    for i, (p, a) in enumerate(timed):
        for q, b in timed[i + 1:]:
            if p.resolve() == q.resolve():
                continue
            if a[0][0] < b[-1][1] and b[0][0] < a[-1][1] and any(x0 < y1 and y0 < x1 for x0, x1 in a for y0, y1 in b):
                found[p].append(q)
                found[q].append(p)
    return found


def wall_warnings(runs, baseline_runs, overlaps: dict[Path, list[Path]]) -> list[str]:
    """Why the wall saving of one seed (its runs against its baseline's) may be the machine's."""
    out = []
    mine = [t for t in map(full_epoch_seconds, runs) if t is not None]
    theirs = [t for t in map(full_epoch_seconds, baseline_runs) if t is not None]
    if mine and theirs and statistics.fmean(theirs) > 0:
        ratio = statistics.fmean(mine) / statistics.fmean(theirs)
        if abs(ratio - 1) > DRIFT_TOLERANCE:
            faster = "faster" if ratio < 1 else "slower"
            out.append(f"its full-data epochs ran {100 * abs(1 - ratio):.0f}% {faster} than the baseline's "
                       f"({statistics.fmean(mine):.2f} s vs {statistics.fmean(theirs):.2f} s): the machine's speed drifted")
    shared = sorted({q.name for r in [*runs, *baseline_runs] for q in overlaps.get(r.path, [])}
                    - {r.path.name for r in [*runs, *baseline_runs]})
    if shared:
        out.append("it or its baseline ran at the same time as " + ", ".join(shared))
    return out
