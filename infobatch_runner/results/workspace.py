"""A saved W&B workspace that compares strategies: W&B's workspaces-as-code (`wandb-workspaces`,
extra [workspace]) builds it from the keys our runs log, and saves it to a project in one command.

    python -m infobatch_runner.results.workspace --entity ME --project infobatch-runner [--group G]
    python -m infobatch_runner.results.workspace ... --spec workspace.json   # write the spec, save nothing

Without it, W&B's automatic panels already show every logged series against `epoch`, and the
sweep's report run its charts (docs/wandb.md); this adds the comparison panels a user would otherwise
draw by hand, on the runs of one group (a dataset, a model and a sweep) when --group is given.
"""

import argparse
import json
import sys
from pathlib import Path

# The panels, as data: what each one plots, from which part of a run (tests check every key
# against the offline run files a sweep writes).
SCATTERS = [  # (title, x summary key, y summary key)
    ("Δacc (pp) against wall-clock saving", "saving_wall", "delta_acc_pp"),
    ("Δacc (pp) against sample saving", "saving_samples", "delta_acc_pp"),
    ("Final test accuracy against wall-clock saving", "saving_wall", "final/test_acc"),
]
CURVES = [  # (title, history key), against epoch, mean ± sd over the runs of each strategy and ratio
    ("Test accuracy per epoch", "test/acc"),
    ("Kept fraction per epoch", "train/kept_fraction"),
    ("Training loss per epoch", "train/loss"),
    ("Learning rate per epoch", "lr"),
]
GROUP_BY = ["prune.name", "prune.ratio"]  # config keys: one line (and band) per strategy and ratio
REPORT_TABLES = ["report/table", "report/trials"]
REPORT_MEDIA = ["report/accuracy_vs_saving", "report/accuracy_curves", "report/kept_fraction"]
COLUMNS = ["config:prune.name", "config:prune.ratio", "config:seed", "summary:final/test_acc", "summary:delta_acc_pp",
           "summary:saving_wall", "summary:saving_samples", "summary:time_cost_s", "summary:setting_id"]


def build(entity: str, project: str, group: str | None = None, name: str = "Strategies against full data"):
    """The workspace (a wandb_workspaces Workspace), not saved."""
    import wandb_workspaces.reports.v2 as wr
    import wandb_workspaces.workspaces as ws

    compare = ws.Section(name="Strategies against full data", is_open=True, pinned=True, panels=[
        *[wr.ScatterPlot(title=title, x=wr.SummaryMetric(x), y=wr.SummaryMetric(y)) for title, x, y in SCATTERS],
        *[wr.LinePlot(title=title, x="epoch", y=[key], groupby=wr.Config(GROUP_BY[0]), groupby_aggfunc="mean",
                      groupby_rangefunc="stddev") for title, key in CURVES],
    ])
    report = ws.Section(name="The sweep's report", is_open=True, panels=[
        *[wr.WeavePanelSummaryTable(table_name=t) for t in REPORT_TABLES],
        wr.MediaBrowser(title="Report plots", media_keys=REPORT_MEDIA),
    ])
    filters = [ws.Metric("Group") == group] if group else ""
    runs = ws.RunsetSettings(filters=filters, groupby=[ws.Config(k) for k in GROUP_BY], pinned_columns=COLUMNS)
    return ws.Workspace(entity=entity, project=project, name=name + (f": {group}" if group else ""),
                        sections=[compare, report], runset_settings=runs)


def spec(workspace) -> dict:
    """The workspace as W&B stores it (its view JSON)."""
    return json.loads(json.dumps(workspace._to_model().model_dump(by_alias=True), default=str))


def _fail(message: str) -> None:
    print(f"python -m infobatch_runner.results.workspace: error: {message}.", file=sys.stderr)
    sys.exit(2)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="python -m infobatch_runner.results.workspace", description=__doc__.splitlines()[0])
    parser.add_argument("--entity", required=True)
    parser.add_argument("--project", required=True)
    parser.add_argument("--group", help="only the runs of this W&B group (<dataset>-<model>-<sweep id>)")
    parser.add_argument("--spec", type=Path, help="write the workspace's JSON here instead of saving it to W&B")
    args = parser.parse_args(argv)
    try:
        workspace = build(args.entity, args.project, args.group)
    except ImportError:
        sys.exit("python -m infobatch_runner.results.workspace: needs wandb-workspaces: "
                 "pip install 'infobatch-runner[workspace]'")
    if args.spec:
        try:
            args.spec.write_text(json.dumps(spec(workspace), indent=1) + "\n")
        except OSError as exc:
            _fail(f"cannot write --spec {args.spec} ({exc.strerror or exc})")
        print(f"wrote {args.spec}")
        return
    try:
        saved = workspace.save()
    except Exception as exc:  # no key, no network, no such project: one sentence, not a traceback
        sys.exit(f"python -m infobatch_runner.results.workspace: W&B did not save the workspace "
                 f"({str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__})")
    print(f"saved: {saved.url}")


if __name__ == "__main__":
    main()
