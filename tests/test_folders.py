"""One process per run or sweep folder, refusals that write nothing, sweeps checked job by job
before the first starts, and failed jobs recorded while the others run."""

import fcntl
import json
import os

import pytest

from conftest import TINY, run_main, snapshot


@pytest.fixture
def finished(tmp_path, monkeypatch, capsys):
    """A finished run's folder."""
    run = tmp_path / "done"
    status, out = run_main(monkeypatch, capsys, TINY + [f"hydra.run.dir={run}"])
    assert status == 0, out
    return run


def held_by_another_process(folder):
    """Lock `folder` the way a running infobatch-run does (another open file description)."""
    folder.mkdir(parents=True, exist_ok=True)
    fd = os.open(folder, os.O_RDONLY)
    fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    return fd


def refused(status, out, *named):
    assert status == 2 and "Traceback" not in out, out
    errors = [line for line in out.splitlines() if line.startswith("infobatch-run: error:")]
    assert len(errors) == 1 and all(n in errors[0] for n in named), out


def test_a_run_folder_in_use_is_refused_and_left_alone(tmp_path, monkeypatch, capsys):
    run = tmp_path / "busy"
    fd = held_by_another_process(run)
    try:
        status, out = run_main(monkeypatch, capsys, TINY + [f"hydra.run.dir={run}"])
    finally:
        os.close(fd)
    refused(status, out, str(run), "in use by another infobatch-run")
    assert snapshot(run) == {} and list(run.iterdir()) == []


def test_a_second_sweep_into_a_sweep_folder_in_use_touches_nothing(tmp_path, monkeypatch, capsys):
    sweep = tmp_path / "sweep"
    fd = held_by_another_process(sweep)
    try:
        status, out = run_main(monkeypatch, capsys, ["-m", "prune=full,infobatch", *TINY, f"hydra.sweep.dir={sweep}"])
    finally:
        os.close(fd)
    refused(status, out, "in use by another infobatch-run", "hydra.sweep.dir")
    assert list(sweep.iterdir()) == []


@pytest.mark.parametrize("extra,named", [
    ([], "already holds a run"),  # a fresh run into a used folder
    (["resume=auto", "prune.ratio=0.3"], "another config (prune.ratio: 0.5 vs 0.3)"),
])
def test_a_refused_run_writes_nothing_not_even_hydra_s_record(finished, monkeypatch, capsys, extra, named):
    before = snapshot(finished)
    assert ".hydra/config.yaml" in before
    status, out = run_main(monkeypatch, capsys, TINY + [f"hydra.run.dir={finished}", *extra])
    refused(status, out, named)
    assert snapshot(finished) == before


def test_a_folder_with_results_but_no_checkpoints_is_never_overwritten(finished, monkeypatch, capsys):
    for f in (finished / "checkpoints").iterdir():
        f.unlink()
    (finished / "checkpoints").rmdir()
    before = snapshot(finished)
    status, out = run_main(monkeypatch, capsys, TINY + [f"hydra.run.dir={finished}"])
    refused(status, out, "already holds a run")
    status, out = run_main(monkeypatch, capsys, TINY + [f"hydra.run.dir={finished}", "resume=auto"])
    refused(status, out, "no checkpoint")
    assert snapshot(finished) == before


def test_resuming_a_finished_run_rewrites_nothing(finished, monkeypatch, capsys):
    before = snapshot(finished)
    status, out = run_main(monkeypatch, capsys, TINY + [f"hydra.run.dir={finished}", "resume=auto"])
    assert status == 0 and "nothing to do" in out, out
    assert snapshot(finished) == before


def test_a_sweep_with_one_bad_value_starts_no_job(tmp_path, monkeypatch, capsys):
    sweep = tmp_path / "sweep"
    status, out = run_main(monkeypatch, capsys, ["-m", "prune.ratio=0.3,1.5,0.5", *TINY, f"hydra.sweep.dir={sweep}"])
    refused(status, out, "prune.ratio must be in [0, 1) (got 1.5)", "prune.ratio=1.5", "no job was started")
    assert not sweep.exists()


def test_a_job_that_fails_at_run_time_is_recorded_and_the_others_run(tmp_path, monkeypatch, capsys):
    sweep = tmp_path / "sweep"
    # ratio 0.999 keeps round(0.001 x 256) = 0 samples: known only once the data is loaded.
    status, out = run_main(monkeypatch, capsys, ["-m", "prune=static_random", "prune.ratio=0.5,0.999,0.3", *TINY,
                                                 f"hydra.sweep.dir={sweep}"])
    assert status == 1 and "Traceback" not in out, out
    assert "job 1_static_random failed: prune.ratio=0.999 keeps" in out
    failed = json.loads((sweep / "1_static_random" / "failed.json").read_text())
    assert "prune.ratio=0.999" in failed["overrides"] and "keeps round" in failed["error"]
    for ok in ("0_static_random", "2_static_random"):
        assert json.loads((sweep / ok / "summary.json").read_text())["ratio"] in (0.5, 0.3)
    report = (sweep / "report.md").read_text()
    assert "## Failed runs" in report and "1_static_random" in report
    assert "1 job(s) of the sweep failed" in out


def test_a_fresh_sweep_into_a_used_sweep_folder_is_refused(tmp_path, monkeypatch, capsys):
    sweep = tmp_path / "sweep"
    status, out = run_main(monkeypatch, capsys, ["-m", "prune=full", *TINY, "trainer.epochs=1",
                                                 f"hydra.sweep.dir={sweep}"])
    assert status == 0, out
    before = snapshot(sweep)
    status, out = run_main(monkeypatch, capsys, ["-m", "prune=infobatch", *TINY, "trainer.epochs=1",
                                                 f"hydra.sweep.dir={sweep}"])
    refused(status, out, "already holds a sweep")
    assert snapshot(sweep) == before


def test_a_sweep_runs_each_baseline_once_per_setting_and_seed(tmp_path, monkeypatch, capsys):
    sweep = tmp_path / "sweep"
    status, out = run_main(monkeypatch, capsys, ["-m", "prune=full,infobatch", "prune.ratio=0.3,0.5", *TINY,
                                                 "trainer.epochs=1", f"hydra.sweep.dir={sweep}"])
    assert status == 0, out
    assert "job 1_full makes the same run as 0_full (prune=full ignores prune.ratio" in out and "skipped" in out
    assert json.loads((sweep / "1_full" / "same_as.json").read_text()) == {"same_as": "0_full"}
    assert not (sweep / "1_full" / "summary.json").exists() and (sweep / "3_infobatch" / "summary.json").exists()
    rows = {r.split()[0]: r for r in out.splitlines() if r.startswith(("full ", "infobatch "))}
    assert rows["full"].split()[1] == "1", "one baseline run, not one per ratio"


def test_budget_mode_jobs_differing_only_in_the_ignored_ratio_run_once(tmp_path):
    from omegaconf import OmegaConf

    from infobatch_runner.sweeps.repeats import what_runs

    base = OmegaConf.create({"seed": 0, "resume": None, "prune": {"name": "infobatch", "ratio": 0.5, "target_saving": 0.3}})
    other = OmegaConf.merge(base, {"prune": {"ratio": 0.7}, "resume": "auto"})
    assert what_runs(base) == what_runs(other)
    assert what_runs(base) != what_runs(OmegaConf.merge(base, {"prune": {"target_saving": 0.2}}))
    fixed = OmegaConf.merge(base, {"prune": {"target_saving": None}})
    assert what_runs(fixed) != what_runs(OmegaConf.merge(fixed, {"prune": {"ratio": 0.7}}))


def test_a_job_that_hits_a_bug_is_recorded_with_its_traceback_and_the_sweep_goes_on(tmp_path, monkeypatch, capsys):
    import infobatch_runner.engine.train as train_module

    real_train = train_module.train

    def buggy_for_infobatch(cfg, run_dir, sweep_dir=None):
        if cfg.prune.name == "infobatch":
            raise KeyError("a bug")
        return real_train(cfg, run_dir, sweep_dir)

    monkeypatch.setattr(train_module, "train", buggy_for_infobatch)
    sweep = tmp_path / "sweep"
    status, out = run_main(monkeypatch, capsys, ["-m", "prune=infobatch,full", *TINY, "trainer.epochs=1",
                                                 f"hydra.sweep.dir={sweep}"])
    assert status == 1 and "Traceback" not in out, out
    # the sweep runs the baseline first (sweeps/order.py), whatever order prune's values are typed in
    assert "job 1_infobatch failed: 'a bug' (traceback in" in out
    assert "KeyError" in (sweep / "1_infobatch" / "traceback.txt").read_text()
    assert json.loads((sweep / "1_infobatch" / "failed.json").read_text())["type"] == "KeyError"
    assert (sweep / "0_full" / "summary.json").exists()
