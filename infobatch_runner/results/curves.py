"""Per-epoch curves of a group of runs over distinct seeds: the runs of one seed are averaged first,
then the mean and sd are taken over seeds (a seed run twice is not two observations). The PNG
plots and the W&B report charts draw the same curves from here."""

import statistics


def seed_runs(group) -> list[list]:
    """The group's runs, one list per distinct seed (repeats of a seed are averaged, not counted twice)."""
    seeds = getattr(group, "seeds", None)
    if seeds:
        return [sv.runs for sv in seeds.values()]
    return [[r] for r in group.runs]


def _per_seed(group, key: str) -> list[list[float]]:
    """Per epoch (as long as the shortest run), each seed's mean over its runs."""
    per_seed = seed_runs(group)
    length = min((len(r.rows) for runs in per_seed for r in runs), default=0)
    return [[statistics.fmean(r.rows[e][key] for r in runs) for runs in per_seed] for e in range(length)]


def mean_curve(group, key: str) -> list[float]:
    """Per epoch, the mean over seeds of each seed's mean over its runs."""
    return [statistics.fmean(seeds) for seeds in _per_seed(group, key)]


def sd_curve(group, key: str) -> list[float]:
    """Per epoch, the sd over seeds of each seed's mean over its runs (0 with a single seed)."""
    return [statistics.stdev(seeds) if len(seeds) > 1 else 0.0 for seeds in _per_seed(group, key)]


def mean_time_axis(group) -> list[float]:
    """Cumulative training time at each epoch's end, starting after the scoring phase; mean over seeds
    of each seed's mean over its runs."""
    per_seed = seed_runs(group)
    length = min((len(r.rows) for runs in per_seed for r in runs), default=0)

    def axis(r) -> list[float]:
        t, xs = r.summary["time_scoring_s"], []
        for e in range(length):
            t += r.rows[e]["train/epoch_time_s"]
            xs.append(t)
        return xs

    seed_axes = [[statistics.fmean(col) for col in zip(*(axis(r) for r in runs))] for runs in per_seed]
    return [statistics.fmean(col) for col in zip(*seed_axes)]
