"""What a sweep adds to its jobs: the order they run in, and the plan of repeats (twins)."""

import fcntl
import json
import os
import threading
from pathlib import Path
from types import SimpleNamespace

from omegaconf import OmegaConf

from infobatch_runner.results import folders
from infobatch_runner.sweeps import repeats
from infobatch_runner.sweeps.order import seed_major

from conftest import TINY, run_main


def test_a_sweep_runs_seed_by_seed_with_each_baseline_first():
    argv = ["-m", "prune=infobatch,full", "prune.ratio=0.3,0.5", "seed=0,1,2", "hydra/launcher=local", "logger=none"]
    assert seed_major(argv) == ["-m", "seed=0,1,2", "prune=full,infobatch", "prune.ratio=0.3,0.5",
                                "hydra/launcher=local", "logger=none"]
    assert seed_major(argv[1:]) == argv[1:], "a single run is left as it is"


def test_a_resumed_sweep_keeps_the_order_it_was_made_with(tmp_path):
    sweep = tmp_path / "s"
    sweep.mkdir()
    made = ["prune=full,infobatch", "seed=0,1"]  # by an earlier version: prune first
    OmegaConf.save({"hydra": {"overrides": {"task": made}}}, sweep / "multirun.yaml")
    argv = ["-m", "seed=0,1", "prune=full,infobatch", "resume=auto", f"hydra.sweep.dir={sweep}"]
    assert seed_major(argv) == ["-m", "prune=full,infobatch", "seed=0,1", "resume=auto", f"hydra.sweep.dir={sweep}"]


def test_the_jobs_run_seed_by_seed(tmp_path, monkeypatch, capsys):
    sweep = tmp_path / "sweep"
    status, out = run_main(monkeypatch, capsys, ["-m", "prune=infobatch,full", "seed=0,1", *TINY, "trainer.epochs=1",
                                                 f"hydra.sweep.dir={sweep}"])
    assert status == 0, out
    ran = [(p.name, json.loads((p / "summary.json").read_text())["seed"]) for p in sorted(sweep.glob("*_*")) if p.is_dir()]
    assert ran == [("0_full", 0), ("1_infobatch", 0), ("2_full", 1), ("3_infobatch", 1)]


def job(folder, **prune):
    cfg = OmegaConf.create({"seed": 0, "resume": None, "prune": {"name": "full", "ratio": 0.5, **prune}})
    return SimpleNamespace(cfg=cfg, folder=folder)


def test_the_plan_names_each_jobs_first_twin(tmp_path):
    jobs = [job(tmp_path / "0_full", ratio=0.3), job(tmp_path / "1_full", ratio=0.5),
            job(tmp_path / "2_infobatch", name="infobatch", ratio=0.3),
            job(tmp_path / "3_infobatch", name="infobatch", ratio=0.5)]
    repeats.write_plan(tmp_path, jobs)
    assert json.loads((tmp_path / folders.SWEEP_PLAN).read_text())["twin_of"] == {
        "0_full": None, "1_full": "0_full", "2_infobatch": None, "3_infobatch": None}
    assert repeats.planned_twin(tmp_path / "1_full", tmp_path) == tmp_path / "0_full"
    assert repeats.planned_twin(tmp_path / "0_full", tmp_path) is None
    assert repeats.planned_twin(tmp_path / "9_other", tmp_path) is False


def test_short_schedule_savings_that_round_to_the_same_epochs_are_one_run(tmp_path):
    """0.3, 0.5 and 0.7 of 2 epochs all train 1 epoch: one run, not three reported as three savings."""
    def short(name, saving, epochs):
        cfg = OmegaConf.create({"seed": 0, "resume": None, "trainer": {"epochs": epochs},
                                "prune": {"name": "short_schedule", "ratio": 0.4, "target_saving": saving}})
        return SimpleNamespace(cfg=cfg, folder=tmp_path / name)

    jobs = [short("0_s", 0.3, 2), short("1_s", 0.5, 2), short("2_s", 0.7, 2), short("3_s", 0.3, 8), short("4_s", 0.5, 8)]
    repeats.write_plan(tmp_path, jobs)
    assert json.loads((tmp_path / folders.SWEEP_PLAN).read_text())["twin_of"] == {
        "0_s": None, "1_s": "0_s", "2_s": "0_s", "3_s": None, "4_s": None}


def hold_elsewhere(folder: Path) -> int:
    """Lock a folder through a file description of its own, as another process would."""
    folder.mkdir(parents=True, exist_ok=True)
    fd = os.open(folder, os.O_RDONLY | os.O_DIRECTORY)
    fcntl.flock(fd, fcntl.LOCK_EX)
    return fd


def test_a_job_waits_for_its_running_twin_and_takes_its_results(tmp_path):
    twin = tmp_path / "0_full"
    fd = hold_elsewhere(twin)
    (twin / ".hydra").mkdir()
    said = []

    def finish():
        (twin / "summary.json").write_text("{}")
        os.close(fd)

    timer = threading.Timer(0.3, finish)
    timer.start()
    assert repeats.wait_for(twin, said.append, grace_s=5, poll_s=0.05) is True
    timer.join()
    assert said == ["waits for 0_full, which makes the same run"]


def test_a_job_runs_itself_when_its_twin_failed_died_or_never_started(tmp_path):
    failed = tmp_path / "failed"
    failed.mkdir()
    (failed / "failed.json").write_text("{}")
    assert repeats.wait_for(failed, print, grace_s=5, poll_s=0.01) is False
    died = tmp_path / "died"
    (died / ".hydra").mkdir(parents=True)  # started, holds no lock, wrote no record
    assert repeats.wait_for(died, print, grace_s=5, poll_s=0.01) is False
    never = tmp_path / "never"  # planned but not started within the grace period
    assert repeats.wait_for(never, print, grace_s=0.05, poll_s=0.01) is False


def test_a_sibling_job_with_a_damaged_record_is_no_twin_and_no_failure(tmp_path, compose_cfg):
    """A sweep resumed with one job's .hydra/config.yaml damaged: the other jobs look for twins
    among their siblings and must not fail on that record (they used to be marked failed)."""
    cfg = compose_cfg(TINY + ["prune=full"])
    for name, text in (("0_full", "a: [b\n"), ("1_full", OmegaConf.to_yaml(cfg))):
        (tmp_path / name / ".hydra").mkdir(parents=True)
        (tmp_path / name / ".hydra" / "config.yaml").write_text(text)
        (tmp_path / name / "summary.json").write_text("{}")
    assert repeats.finished_twin(cfg, tmp_path / "2_full", tmp_path) == tmp_path / "1_full"


def test_a_report_that_cannot_be_written_fails_the_sweep_in_one_sentence(tmp_path, monkeypatch, capsys):
    """Hydra only warns when a callback raises: the sweep used to exit 0 with no report."""
    from infobatch_runner.results import report

    def broken(*args, **kwargs):
        raise ImportError("cannot import name 'against'")

    monkeypatch.setattr(report, "write_report", broken)
    sweep = tmp_path / "sweep"
    status, out = run_main(monkeypatch, capsys, ["-m", "prune=full,infobatch", *TINY, f"hydra.sweep.dir={sweep}"])
    assert status == 1 and "Traceback" not in out, out
    assert (f"infobatch-run: error: the sweep's report could not be written (cannot import name 'against'); write it "
            f"with infobatch-report {sweep}") in out, out
