"""The installed console script end to end, as a user runs it: from another directory, offline."""

import json
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

from conftest import TINY, run_main
from infobatch_runner.pruning import STRATEGIES

SCRIPT = str(Path(sys.executable).with_name("infobatch-run"))


def run_cli(args, cwd, env_extra=None, timeout=300):
    env = {**os.environ, "WANDB_MODE": "offline", "WANDB_SILENT": "true", **(env_extra or {})}
    return subprocess.run([SCRIPT, *args], cwd=cwd, env=env, capture_output=True, text=True, timeout=timeout)


def wandb_runs(run_dir: Path):
    return sorted((run_dir / "wandb").glob("offline-run-*"))


TINY_WANDB = [a for a in TINY if a != "logger=none"] + ["logger=wandb"]


def test_single_run_writes_metrics_summary_and_an_offline_wandb_run(tmp_path):
    run_dir = tmp_path / "run"
    result = run_cli(TINY_WANDB + [f"hydra.run.dir={run_dir}"], cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    assert "final test acc" in result.stdout and "samples saved" in result.stdout
    lines = (run_dir / "metrics.csv").read_text().splitlines()
    assert lines[0] == "epoch,lr,train/loss,train/kept_fraction,train/epoch_time_s,test/acc,test/loss,val/acc,val/loss"
    assert len(lines) == 1 + 3
    summary = json.loads((run_dir / "summary.json").read_text())
    assert summary["strategy"] == "infobatch" and summary["epochs"] == 3
    assert len(wandb_runs(run_dir)) == 1
    assert list(wandb_runs(run_dir)[0].glob("*.wandb")), "the offline run holds its data file"


def test_an_epoch_that_trains_nothing_logs_no_loss_to_wandb(tmp_path):
    """short_schedule at its default ratio 0.4 trains round(1.8) = 2 of the 3 epochs: the third has no training loss, so W&B
    gets none (a gap in the loss curve), where it used to get 0.0."""
    from wandb_files import offline_runs

    run_dir = tmp_path / "run"
    result = run_cli(TINY_WANDB + ["prune=short_schedule", f"hydra.run.dir={run_dir}"], cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    (run,) = offline_runs(run_dir)
    epochs = {row["epoch"]: row for row in run.history if "test/acc" in row}
    assert epochs[2]["train/loss"] > 0 and "train/loss" not in epochs[3] and epochs[3]["train/kept_fraction"] == 0


def test_epochs_are_numbered_from_1_in_the_log_the_files_and_wandb_whose_table_stays_slim(tmp_path):
    from infobatch_runner.results.wandb_runs import setting_id
    from wandb_files import offline_runs

    run_dir = tmp_path / "run"
    result = run_cli(TINY_WANDB + [f"hydra.run.dir={run_dir}"], cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    assert re.findall(r"epoch (\d)/3", result.stdout + result.stderr)[:1] == ["1"]
    assert [int(line.split(",")[0]) for line in (run_dir / "metrics.csv").read_text().splitlines()[1:]] == [1, 2, 3]
    summary = json.loads((run_dir / "summary.json").read_text())
    assert 1 <= summary["best/epoch"] <= 3
    (run,) = offline_runs(run_dir)
    assert [row["epoch"] for row in run.history if "test/acc" in row] == [1, 2, 3]
    assert run.summary["best/epoch"] == summary["best/epoch"]
    assert run.summary["setting_id"] == setting_id(summary["setting"])
    assert not {"setting", "prune", "epoch_spans", "wandb"} & set(run.summary), "the settings are the config's, once"
    assert all(not isinstance(v, (dict, list)) for k, v in run.summary.items() if not k.startswith("_")), \
        "one column per summary key in a runs table, no nested leaves"


def test_two_job_multirun_gives_one_wandb_run_per_job(tmp_path):
    sweep = tmp_path / "sweep"
    result = run_cli(["-m", "prune=full,infobatch", *TINY_WANDB, f"hydra.sweep.dir={sweep}"], cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    jobs = sorted(p for p in sweep.iterdir() if p.is_dir() and p.name[0].isdigit())
    assert [p.name for p in jobs] == ["0_full", "1_infobatch"]
    for job in jobs:
        assert json.loads((job / "summary.json").read_text())["strategy"] == job.name.split("_", 1)[1]
        assert len(wandb_runs(job)) == 1
    # The sweep ends in its comparison: files, a printed table, and a W&B run of job type report.
    for name in ("report.md", "report.csv", "accuracy_vs_saving.png", "accuracy_curves.png", "kept_fraction.png"):
        assert (sweep / name).is_file(), name
    assert "infobatch ratio=0.5" in result.stdout and "wall saving" in result.stdout
    assert len(wandb_runs(sweep)) == 1
    info = json.loads((sweep / "1_infobatch" / "summary.json").read_text())
    assert info["saving_wall"] is not None, "paired in-run with the full job that finished before it"


def test_resnet50_infobatch_runs_on_cpu(tmp_path):
    # no warm-up or checkpoints (a throwaway ResNet-50 and 2 x 95 MB fsynced per epoch): other tests cover those
    args = ["prune=infobatch", "model=resnet50", "dataset=synthetic", "trainer.epochs=2", "dataset.num_train=64",
            "dataset.num_test=32", "trainer.batch_size=32", "logger=none", "trainer.warmup_steps=0",
            "trainer.checkpoint_every=0", f"hydra.run.dir={tmp_path / 'r50'}"]
    result = run_cli(args, cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    assert json.loads((tmp_path / "r50" / "summary.json").read_text())["model"] == "resnet50"


@pytest.mark.parametrize("bad,named", [("prune.ratio=1.5", "prune.ratio"), ("trainer.epochs=0", "trainer.epochs"),
                                       ("model=nope", "model=nope"), ("trainer.precision=fp16", "fp16")])
def test_bad_input_is_one_sentence_and_nonzero_exit(tmp_path, bad, named):
    result = run_cli(TINY + [bad, f"hydra.run.dir={tmp_path / 'bad'}"], cwd=tmp_path)
    assert result.returncode != 0
    assert "Traceback" not in result.stderr + result.stdout
    message = result.stderr.strip()
    assert len(message.splitlines()) == 1 and named in message and message.startswith("infobatch-run: error:")
    assert not (tmp_path / "bad" / "metrics.csv").exists()


def test_wandb_without_credentials_goes_offline_without_asking(tmp_path):
    env = {k: v for k, v in os.environ.items() if not k.startswith("WANDB_")}
    env.update(HOME=str(tmp_path), NETRC=str(tmp_path / "no-netrc"))
    run_dir = tmp_path / "run"
    args = TINY_WANDB + ["logger.mode=online", f"hydra.run.dir={run_dir}"]
    result = subprocess.run([SCRIPT, *args], cwd=tmp_path, env=env, capture_output=True, text=True, timeout=180,
                            stdin=subprocess.DEVNULL)
    assert result.returncode == 0, result.stderr
    notices = [line for line in (result.stdout + result.stderr).splitlines() if "no API key found" in line]
    assert len(notices) == 1
    assert len(wandb_runs(run_dir)) == 1


def test_help_lists_the_config_groups(tmp_path):
    result = run_cli(["--help"], cwd=tmp_path)
    assert result.returncode == 0
    for line in ("prune: " + ", ".join(sorted(STRATEGIES)), "model: cnn_small, resnet18, resnet50, timm", "experiment:"):
        assert line in result.stdout


def test_local_executor_sweep_through_the_submitit_launcher(tmp_path):
    # The local executor starts every job at once: the repeated baseline (prune=full ignores the
    # ratio) waits for its twin instead of training again. Each run records its epochs' wall-clock
    # spans, from which the report sees jobs that shared the machine (tests/test_report.py).
    sweep = tmp_path / "sweep"
    result = run_cli(["-m", "hydra/launcher=local", "prune=full,infobatch", "prune.ratio=0.3,0.5", *TINY,
                      f"hydra.sweep.dir={sweep}"], cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    for job in ("0_full", "2_infobatch", "3_infobatch"):
        summary = json.loads((sweep / job / "summary.json").read_text())
        assert summary["epochs"] == 3 and len(summary["epoch_spans"]) == 3
    assert not (sweep / "1_full" / "summary.json").exists(), "the repeat did not train"
    assert json.loads((sweep / "1_full" / "same_as.json").read_text()) == {"same_as": "0_full"}
    assert (sweep / "report.md").is_file()


def test_slurm_preset_composes_with_the_knobs_users_change():
    from hydra import compose, initialize_config_module

    with initialize_config_module(version_base="1.3", config_module="infobatch_runner.conf"):
        cfg = compose(config_name="config", return_hydra_config=True,
                      overrides=["hydra/launcher=slurm", "hydra.launcher.partition=gpu", "hydra.launcher.timeout_min=30"])
    launcher = cfg.hydra.launcher
    assert launcher._target_.endswith("SlurmLauncher")
    assert (launcher.partition, launcher.timeout_min, launcher.gpus_per_node) == ("gpu", 30, 1)


def test_unreachable_wandb_server_falls_back_to_offline(tmp_path):
    env = {"WANDB_MODE": "online", "WANDB_API_KEY": "0" * 40, "WANDB_BASE_URL": "http://127.0.0.1:9"}  # nothing listens
    run_dir = tmp_path / "run"
    result = run_cli(TINY_WANDB + ["trainer.epochs=1", "logger.init_timeout=5", f"hydra.run.dir={run_dir}"],
                     cwd=tmp_path, env_extra=env, timeout=120)
    assert result.returncode == 0, result.stderr
    assert "logging offline instead" in result.stdout + result.stderr
    assert len(wandb_runs(run_dir)) == 1 and (run_dir / "summary.json").exists()


def test_the_closing_line_names_the_budget_target_not_the_ignored_ratio():
    from infobatch_runner.engine.train import closing_line

    base = {"dataset": "fashion_mnist", "model": "cnn_small", "final/test_acc": 0.9, "best/test_acc": 0.91,
            "time_cost_s": 10.0, "time_scoring_s": 0.0, "saving_wall": None}
    budget = {**base, "strategy": "infobatch", "ratio": None, "saving_samples": 0.2996,
              "prune": {"name": "infobatch", "ratio": 0.5, "target_saving": 0.3}}
    assert closing_line(budget).startswith("infobatch (target saving 0.3, met) on")
    assert "missed" in closing_line({**budget, "saving_samples": 0.25})
    full = {**base, "strategy": "full", "ratio": None, "saving_samples": 0.0, "saving_wall": 0.0,
            "prune": {"name": "full", "ratio": 0.5, "target_saving": 0.3}}
    assert closing_line(full).startswith("full on fashion_mnist/cnn_small")


def test_a_home_path_is_taken_as_the_readme_writes_it(tmp_path, monkeypatch, capsys):
    """README and --help write dataset.root=~/data; Hydra's grammar alone rejects a value starting with ~."""
    from infobatch_runner.cli import quote_home_paths

    assert quote_home_paths(["dataset.root=~/data", "~trainer.grad_clip", "seed=0,1", "prune.cache_dir=~/c,~/d"]) == \
        ["dataset.root='~/data'", "~trainer.grad_clip", "seed=0,1", "prune.cache_dir=~/c,~/d"]
    monkeypatch.setenv("HOME", str(tmp_path))
    status, out = run_main(monkeypatch, capsys, ["dataset=cifar10", "dataset.root=~/data", "trainer.epochs=1",
                                                 f"hydra.run.dir={tmp_path / 'run'}"])
    assert status == 2 and f"{tmp_path}/data/cifar-10-batches-py lacks" in out, out


def test_help_answers_without_importing_torch():
    """--help costs Hydra's composition only (about a second), not torch's import (seconds more)."""
    code = ("import sys; sys.argv = ['infobatch-run', '--help']\n"
            "from infobatch_runner.cli import main\n"
            "try:\n    main()\nexcept SystemExit:\n    pass\n"
            "print('TORCH' if 'torch' in sys.modules else 'NO TORCH')")
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert "== Configuration groups ==" in result.stdout and result.stdout.strip().endswith("NO TORCH"), result


def test_a_sweep_asked_to_print_its_config_is_one_sentence(monkeypatch, capsys):
    status, out = run_main(monkeypatch, capsys, ["-m", "--cfg", "hydra", "prune=full,infobatch"])
    assert status == 2 and "Traceback" not in out, out
    assert [line for line in out.splitlines() if line.startswith("infobatch-run: error:")] == [
        "infobatch-run: error: Only one of --run, --multirun, --cfg, --info and --shell_completion can be specified; "
        "drop -m to print the config of one run (--cfg job)."]


def test_the_untimed_warm_up_is_announced_before_it_runs(tmp_path, monkeypatch, capsys):
    """A warm-up of a large model on a CPU takes minutes: a user sees why nothing else is printed."""
    status, out = run_main(monkeypatch, capsys, TINY + ["trainer.epochs=1", f"hydra.run.dir={tmp_path / 'run'}"])
    assert status in (0, None), out
    lines = out.splitlines()
    start = next(i for i, line in enumerate(lines) if "warming up: 3 untimed step(s)" in line)
    done = next(i for i, line in enumerate(lines) if "warm-up done in" in line)
    first_epoch = next(i for i, line in enumerate(lines) if "epoch 1/1" in line)
    assert start < done < first_epoch and "(trainer.warmup_steps)" in lines[start]


def test_trainer_warmup_steps_bounds_the_warm_up(tmp_path, monkeypatch, capsys):
    from infobatch_runner.engine import train as train_module

    steps = []
    real = train_module.warm_up
    monkeypatch.setattr(train_module, "warm_up", lambda ctx, n: steps.append(n) or real(ctx, n))
    status, out = run_main(monkeypatch, capsys, TINY + ["trainer.epochs=1", "trainer.warmup_steps=1",
                                                        f"hydra.run.dir={tmp_path / 'one'}"])
    assert status in (0, None) and steps == [1] and "warming up: 1 untimed step(s)" in out, out
    status, out = run_main(monkeypatch, capsys, TINY + ["trainer.epochs=1", "trainer.warmup_steps=0",
                                                        f"hydra.run.dir={tmp_path / 'none'}"])
    assert status in (0, None) and steps == [1] and "warming up" not in out, out
    assert json.loads((tmp_path / "none" / "summary.json").read_text())["time_warmup_s"] == 0.0


def test_a_sweeps_wandb_runs_carry_what_a_dashboard_compares(tmp_path):
    """Read back from the offline run files: each training run's group and tags name its sweep, its
    config holds the sweep id, the Hydra choices and the overrides, and its summary the accuracy
    difference to its baseline and the baseline's accuracy."""
    from wandb_files import offline_runs

    sweep = tmp_path / "sweep"
    result = run_cli(["-m", "prune=full,infobatch", *TINY_WANDB, f"hydra.sweep.dir={sweep}"], cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    (full,), (info,) = offline_runs(sweep / "0_full"), offline_runs(sweep / "1_infobatch")
    for run in (full, info):
        assert run.group == "synthetic-cnn_small-sweep" and run.job_type == "train"
        assert "sweep" in run.tags and run.value("sweep_id") == "sweep"
        assert run.value("hydra_choices")["prune"] == run.name.split("-")[0]
        assert "prune=" + run.name.split("-")[0] in run.value("overrides")
    summary = json.loads((sweep / "1_infobatch" / "summary.json").read_text())
    assert info.summary["delta_acc_pp"] == pytest.approx(summary["delta_acc_pp"])
    assert info.summary["baseline/test_acc"] == json.loads((sweep / "0_full" / "summary.json").read_text())[
        "final/test_acc"]
    assert full.summary["delta_acc_pp"] == 0.0


def test_a_sweeps_report_run_holds_native_charts_and_the_report_as_an_artifact(tmp_path):
    from wandb_files import offline_runs, records

    sweep = tmp_path / "sweep"
    result = run_cli(["-m", "prune=full,infobatch", "seed=0,1", *TINY_WANDB, f"hydra.sweep.dir={sweep}"], cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    (report,) = offline_runs(sweep)
    assert report.job_type == "report" and report.group == "synthetic-cnn_small-sweep"
    logged = {k for row in report.history for k in row}
    for chart in ("report/delta_acc_vs_wall_saving", "report/delta_acc_vs_sample_saving", "report/test_acc_curves"):
        assert any(k.startswith(chart) for k in logged), (chart, sorted(logged))
    (path,) = sweep.glob("wandb/offline-run-*/run-*.wandb")
    kinds = [r.WhichOneof("record_type") for r in records(path)]
    assert "artifact" in kinds or "use_artifact" in kinds, kinds
    manifest = "\n".join(str(r) for r in records(path) if r.WhichOneof("record_type") == "artifact")
    for name in ("report.md", "report.csv", "accuracy_vs_saving.png"):
        assert name in manifest, name
    check_the_workspace_plots_what_the_runs_hold(offline_runs(sweep / "1_infobatch")[0], report, tmp_path)


def flat(config: dict, prefix: str = "") -> set[str]:
    """A run's config keys as W&B panels name them: prune.name, trainer.epochs, ..."""
    keys = set()
    for k, v in config.items():
        v = v["value"] if isinstance(v, dict) and "value" in v and not prefix else v
        keys |= flat(v, f"{prefix}{k}.") if isinstance(v, dict) else {f"{prefix}{k}"}
    return keys


def check_the_workspace_plots_what_the_runs_hold(train, report, tmp_path):
    """The saved workspace (python -m infobatch_runner.results.workspace) names only keys the runs log."""
    from infobatch_runner.results import workspace

    history = {k for row in train.history for k in row}
    for _, x, y in workspace.SCATTERS:
        assert {x, y} <= set(train.summary), (x, y)
    assert {key for _, key in workspace.CURVES} | {"epoch"} <= history
    assert set(workspace.GROUP_BY) <= flat(train.config)
    for column in workspace.COLUMNS:
        where, key = column.split(":", 1)
        assert key in (flat(train.config) if where == "config" else set(train.summary)), column
    logged = {k.split("/")[0] + "/" + k.split("/")[1] for row in report.history for k in row if k.startswith("report/")}
    assert {"report/table", *workspace.REPORT_MEDIA} <= logged, logged
    workspace.main(["--entity", "me", "--project", "p", "--group", train.group, "--spec", str(tmp_path / "ws.json")])
    spec = (tmp_path / "ws.json").read_text()
    assert f'"{train.group}"' in spec and "summary:saving_wall" in spec and "report/table" in spec


def test_a_sweep_with_a_budget_curve_puts_each_runs_speedup_in_wandb(tmp_path):
    """Full data at 2 and 3 epochs is a budget curve: each InfoBatch run's W&B summary gets its speedup
    and Δacc at equal cost against its seed's curve, and the report run a native accuracy-against-cost
    chart."""
    from wandb_files import offline_runs

    sweep = tmp_path / "sweep"
    result = run_cli(["-m", "prune=full,infobatch", *TINY_WANDB, "trainer.epochs=2,3", f"hydra.sweep.dir={sweep}"],
                     cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    header = next(line for line in result.stdout.splitlines() if line.startswith("strategy "))
    assert header.split()[-2:] == ["speedup", "verdict"], "the console table has the speedup column"
    for job in sweep.glob("*_infobatch"):
        summary = json.loads((job / "summary.json").read_text())
        reopened = offline_runs(job)[-1]
        assert summary["speedup_relation"] in ("=", ">=", "<=")
        assert reopened.summary["speedup"] == summary["speedup"]
        assert reopened.summary["delta_acc_equal_cost_pp"] == summary["delta_acc_equal_cost_pp"]
    (report,) = offline_runs(sweep)
    assert any(k.startswith("report/accuracy_vs_cost") for row in report.history for k in row)


def test_a_run_reopened_to_add_its_baseline_keeps_its_name_group_and_job_type(tmp_path, monkeypatch, capsys):
    """Offline, reopening a run by id writes a second run folder: it must be the same run to W&B."""
    from infobatch_runner.results.runs import read_run
    from infobatch_runner.results.wandb_runs import add_paired_figures_to_wandb
    from wandb_files import offline_runs

    run_dir = tmp_path / "run"
    status, out = run_main(monkeypatch, capsys, TINY_WANDB + [f"hydra.run.dir={run_dir}"])
    assert status in (0, None), out
    run = read_run(run_dir)
    run.summary.update({"saving_wall": 0.25, "baseline/test_acc": 0.5, "delta_acc_pp": -1.0})
    add_paired_figures_to_wandb([run])
    first, again = offline_runs(run_dir)
    assert (again.name, again.group, again.job_type, again.tags) == (first.name, first.group, first.job_type,
                                                                     first.tags)
    assert again.summary["saving_wall"] == 0.25 and again.summary["delta_acc_pp"] == -1.0


def test_a_jobs_log_file_says_how_it_ended(tmp_path, monkeypatch, capsys):
    """The closing line, a twin's 'skipped' line and a failure went to the terminal only."""
    sweep = tmp_path / "sweep"
    status, out = run_main(monkeypatch, capsys, ["-m", "prune=full,infobatch", "prune.ratio=0.3,0.5", *TINY,
                                                 "trainer.epochs=1", f"hydra.sweep.dir={sweep}"])
    assert status in (0, None), out
    assert "final test acc" in (sweep / "0_full" / "infobatch-run.log").read_text()
    skipped = [p for p in sweep.glob("*_full") if (p / "same_as.json").exists()]
    assert skipped and "skipped, its results are" in (skipped[0] / "infobatch-run.log").read_text()
    run = tmp_path / "run"  # a run refused after Hydra started its log: the sentence is in the log too
    status, out = run_main(monkeypatch, capsys, TINY + ["model=resnet18", "dataset.image_size=8", "trainer.batch_size=1",
                                                        f"hydra.run.dir={run}"])
    assert status == 2 and "trainer.batch_size to 2 or more" in (run / "infobatch-run.log").read_text(), out
