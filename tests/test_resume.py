"""Runs that survive: kill -9 and resume, signals, damaged checkpoints, full disks, non-finite losses."""

import csv
import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch
from hydra import compose, initialize_config_module

from conftest import TINY, run_main
from infobatch_runner.engine.train import train
from infobatch_runner.errors import UserError

SCRIPT = str(Path(sys.executable).with_name("infobatch-run"))
LONGER = ["dataset=synthetic", "dataset.num_train=4096", "dataset.num_test=256", "dataset.image_size=16",
          "dataset.augment.crop_padding=2", "dataset.augment.flip=true", "trainer.epochs=6", "trainer.batch_size=64",
          "trainer.progress=false", "logger=none", "prune=infobatch", "prune.delta=0.7"]


def cli(args, **kw):
    env = {**os.environ, "WANDB_MODE": "offline"}
    return subprocess.Popen([SCRIPT, *args], env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, **kw)


def rows(run_dir: Path) -> list[dict]:
    with open(run_dir / "metrics.csv", newline="") as f:
        return [{k: v for k, v in r.items() if k != "train/epoch_time_s"} for r in csv.DictReader(f)]


def wait_for_rows(run_dir: Path, n: int, proc, timeout=120):
    deadline = time.time() + timeout
    while time.time() < deadline:
        path = run_dir / "metrics.csv"
        if path.exists() and len(path.read_text().splitlines()) > n:
            return
        assert proc.poll() is None, proc.communicate()
        time.sleep(0.05)
    raise AssertionError("the run did not get far enough")


@pytest.fixture(scope="module")
def whole(tmp_path_factory):
    """The uninterrupted run that every interrupted one must end like."""
    run_dir = tmp_path_factory.mktemp("whole")
    proc = cli(LONGER + [f"hydra.run.dir={run_dir}"])
    assert proc.wait(timeout=300) == 0, proc.communicate()
    return run_dir


def same_ending(a_dir: Path, b_dir: Path) -> None:
    a, b = (json.loads((d / "summary.json").read_text()) for d in (a_dir, b_dir))
    for key in ("final/test_acc", "best/test_acc", "samples_trained", "saving_samples", "final/test_loss"):
        assert a[key] == b[key], key
    assert rows(a_dir) == rows(b_dir), "the same plans and the same accuracy, epoch for epoch"


def test_kill_9_then_resume_ends_where_the_uninterrupted_run_ends(tmp_path, whole):
    broken = tmp_path / "broken"
    victim = cli(LONGER + [f"hydra.run.dir={broken}"])
    wait_for_rows(broken, 2, victim)
    victim.send_signal(signal.SIGKILL)
    victim.wait()
    assert not (broken / "summary.json").exists()

    resumed = cli(LONGER + [f"hydra.run.dir={broken}", "resume=auto"])
    out, err = resumed.communicate(timeout=300)
    assert resumed.returncode == 0, err
    assert "resuming after epoch" in out + err
    same_ending(whole, broken)
    assert sorted(p.name for p in (broken / "checkpoints").iterdir()) == ["best.pt", "last.pt"]


def test_sigterm_checkpoints_mid_epoch_and_resume_ends_the_same(tmp_path, whole):
    run = tmp_path / "run"
    proc = cli(LONGER + [f"hydra.run.dir={run}"])
    wait_for_rows(run, 1, proc)
    time.sleep(0.2)  # into the next epoch
    proc.send_signal(signal.SIGTERM)
    out, err = proc.communicate(timeout=120)
    assert proc.returncode == 128 + signal.SIGTERM
    assert "stopped by SIGTERM" in err and "resume=auto" in err and "Traceback" not in err
    saved = torch.load(run / "checkpoints" / "last.pt", weights_only=False)
    resumed = cli(LONGER + [f"hydra.run.dir={run}", "resume=auto"])
    assert resumed.wait(timeout=300) == 0
    same_ending(whole, run)
    if "in_epoch" in saved:  # the signal landed inside an epoch (it may land on an epoch's last step)
        assert saved["in_epoch"]["steps_done"] > 0 and "step" in err


def compose_cfg(*extra):
    with initialize_config_module(version_base="1.3", config_module="infobatch_runner.conf"):
        return compose(config_name="config", overrides=LONGER[:4] + ["trainer.epochs=2", "trainer.batch_size=64",
                                                                      "trainer.progress=false", "logger=none", *extra])


def test_unreadable_checkpoint_is_one_sentence(tmp_path):
    train(compose_cfg("dataset.num_train=256"), tmp_path)
    (tmp_path / "checkpoints" / "last.pt").write_bytes(b"\x00 truncated")
    with pytest.raises(UserError, match=r"checkpoint .*last.pt is unreadable .*best.pt"):
        train(compose_cfg("dataset.num_train=256", "resume=auto"), tmp_path)


def test_resume_with_another_config_is_refused(tmp_path):
    train(compose_cfg("dataset.num_train=256"), tmp_path)
    with pytest.raises(UserError, match=r"another config \(prune.ratio: 0.5 vs 0.3\)"):
        train(compose_cfg("dataset.num_train=256", "resume=auto", "prune.ratio=0.3"), tmp_path)


def test_a_fresh_run_never_overwrites_a_run(tmp_path):
    train(compose_cfg("dataset.num_train=256"), tmp_path)
    with pytest.raises(UserError, match="already holds a run"):
        train(compose_cfg("dataset.num_train=256"), tmp_path)


def test_full_disk_keeps_the_last_good_checkpoint(tmp_path, monkeypatch):
    cfg = compose_cfg("dataset.num_train=256", "trainer.epochs=3")
    real_save = torch.save
    calls = {"n": 0}

    def save_until_disk_is_full(obj, f, *a, **kw):
        calls["n"] += 1
        if calls["n"] > 2:  # epoch 1: last + best; epoch 2 finds the disk full
            raise OSError(28, "No space left on device")
        return real_save(obj, f, *a, **kw)

    monkeypatch.setattr(torch, "save", save_until_disk_is_full)
    with pytest.raises(UserError, match="No space left on device.*last good checkpoint .*last.pt is kept"):
        train(cfg, tmp_path)
    monkeypatch.setattr(torch, "save", real_save)
    assert torch.load(tmp_path / "checkpoints" / "last.pt", weights_only=False)["epoch"] == 1
    assert not list((tmp_path / "checkpoints").glob("*.tmp"))


def test_non_finite_loss_stops_the_run_naming_epoch_and_step(tmp_path):
    with pytest.raises(UserError, match=r"non-finite at epoch 1, step \d+"):
        train(compose_cfg("dataset.num_train=256", "optimizer.lr=1e30", "scheduler=constant"), tmp_path)


def test_skip_nonfinite_skips_and_counts_only_trained_samples(tmp_path):
    summary = train(compose_cfg("dataset.num_train=256", "optimizer.lr=1e30", "scheduler=constant", "prune=full",
                                "trainer.skip_nonfinite=true"), tmp_path)
    assert summary["skipped_batches"] > 0
    # 256 samples in 4 batches of 64 per epoch, 2 epochs: a skipped batch's samples were not trained.
    assert summary["samples_trained"] == 2 * 256 - 64 * summary["skipped_batches"]
    assert summary["saving_samples"] == pytest.approx(64 * summary["skipped_batches"] / 512)


def test_sigterm_during_scoring_stops_at_a_proxy_batch_and_claims_no_checkpoint(tmp_path):
    run = tmp_path / "run"
    args = [a for a in LONGER if not a.startswith(("prune", "trainer.epochs", "dataset.num_train"))] + [
        "dataset.num_train=1024", "prune=el2n", "prune.score_epochs=40", "prune.cache=false", "trainer.epochs=2",
        f"hydra.run.dir={run}"]
    proc = cli(args)
    log, deadline = run / "infobatch-run.log", time.time() + 120
    while not (log.exists() and "el2n on synthetic" in log.read_text()):  # the run has begun: scoring is next
        assert proc.poll() is None and time.time() < deadline, proc.communicate()
        time.sleep(0.05)
    time.sleep(1.0)
    proc.send_signal(signal.SIGTERM)
    out, err = proc.communicate(timeout=60)
    assert proc.returncode == 128 + signal.SIGTERM, err
    assert "during the el2n scoring phase" in err and "nothing was kept" in err and "Traceback" not in err
    assert "start it afresh in the same folder with resume=auto" in err, "the advice that works: see below"
    assert "scoring el2n: proxy 1/1 done" not in log.read_text(), "stopped inside the proxy training"
    assert not (run / "checkpoints").exists() and not (run / "summary.json").exists()
    resumed = cli(args + ["resume=auto"])  # no checkpoint and no results: it starts afresh
    out, err = resumed.communicate(timeout=300)
    assert resumed.returncode == 0, err
    assert json.loads((run / "summary.json").read_text())["samples_scoring"] > 0


# --- trainer.checkpoint_every ------------------------------------------------------------------


def sigterm_after_epoch(monkeypatch, epochs_done: int, sig: int = signal.SIGTERM):
    """SIGTERM (or `sig`) to this process right after the evaluation of epoch `epochs_done` (1-based)."""
    from infobatch_runner.engine import train as train_module

    real, calls = train_module.evaluate, {"n": 0}

    def evaluate(*args, **kwargs):
        out = real(*args, **kwargs)
        calls["n"] += 1
        if calls["n"] == epochs_done:
            os.kill(os.getpid(), sig)
        return out

    monkeypatch.setattr(train_module, "evaluate", evaluate)


def test_a_signal_after_an_unsaved_epoch_checkpoints_there_and_resume_ends_the_same(tmp_path, monkeypatch):
    from infobatch_runner.engine.loop import Interrupted

    args = ("dataset.num_train=256", "trainer.epochs=3", "trainer.checkpoint_every=2")
    whole = tmp_path / "whole"
    train(compose_cfg(*args), whole)
    run = tmp_path / "run"
    sigterm_after_epoch(monkeypatch, 1)  # epoch 1 is not due with checkpoint_every=2
    with pytest.raises(Interrupted, match=r"after epoch 1; the checkpoint of epoch 1 is kept: continue with resume=auto"):
        train(compose_cfg(*args), run)
    assert torch.load(run / "checkpoints" / "last.pt", weights_only=False)["epoch"] == 1
    monkeypatch.undo()
    train(compose_cfg(*args, "resume=auto"), run)
    same_ending(whole, run)


def test_checkpoint_every_0_keeps_nothing_on_a_signal(tmp_path, monkeypatch):
    from infobatch_runner.engine.loop import EpochBar, Interrupted

    real_step, calls = EpochBar.step, {"n": 0}

    def step(self, *args):  # mid-epoch: after the second batch of the first epoch
        calls["n"] += 1
        if calls["n"] == 2:
            os.kill(os.getpid(), signal.SIGTERM)
        return real_step(self, *args)

    monkeypatch.setattr(EpochBar, "step", step)
    with pytest.raises(Interrupted, match=r"during epoch 1; trainer.checkpoint_every=0 keeps no checkpoint, so "
                                          r"nothing was kept\.$"):
        train(compose_cfg("dataset.num_train=256", "trainer.checkpoint_every=0"), tmp_path)
    assert not (tmp_path / "checkpoints").exists()


def test_a_mid_epoch_signal_still_checkpoints_with_checkpoint_every_above_1(tmp_path, monkeypatch):
    from infobatch_runner.engine.loop import EpochBar, Interrupted

    real_step, calls = EpochBar.step, {"n": 0}

    def step(self, *args):  # the second batch of the second epoch (4 batches each)
        calls["n"] += 1
        if calls["n"] == 6:
            os.kill(os.getpid(), signal.SIGTERM)
        return real_step(self, *args)

    monkeypatch.setattr(EpochBar, "step", step)
    with pytest.raises(Interrupted, match=r"at epoch 2, step 2; saved a checkpoint there"):
        train(compose_cfg("dataset.num_train=256", "trainer.epochs=3", "trainer.checkpoint_every=5"), tmp_path)
    saved = torch.load(tmp_path / "checkpoints" / "last.pt", weights_only=False)
    assert saved["epoch"] == 1 and saved["in_epoch"]["steps_done"] == 2


def test_resume_auto_before_the_first_checkpoint_was_due_starts_afresh(tmp_path):
    from infobatch_runner.engine import checkpoint

    train(compose_cfg("dataset.num_train=256", "trainer.checkpoint_every=0"), tmp_path)
    (tmp_path / "summary.json").unlink()  # as if killed after its epochs, before its summary
    assert checkpoint.previous_state(compose_cfg("dataset.num_train=256", "trainer.checkpoint_every=0",
                                                 "resume=auto"), tmp_path) is None
    with pytest.raises(UserError, match="holds a run's results but no checkpoint"):  # a checkpoint was due
        checkpoint.previous_state(compose_cfg("dataset.num_train=256", "resume=auto"), tmp_path)


def test_killed_between_the_first_row_and_its_checkpoint_resumes_afresh(tmp_path):
    from infobatch_runner.engine import checkpoint

    train(compose_cfg("dataset.num_train=256", "trainer.checkpoint_every=0"), tmp_path)
    (tmp_path / "summary.json").unlink()
    lines = (tmp_path / "metrics.csv").read_text().splitlines()
    (tmp_path / "metrics.csv").write_text("\n".join(lines[:2]) + "\n")  # epoch 0's row, then kill -9
    assert checkpoint.previous_state(compose_cfg("dataset.num_train=256", "resume=auto"), tmp_path) is None


def test_checkpoints_of_earlier_versions_still_resume(tmp_path):
    """Written before trainer.tf32 and trainer.checkpoint_every existed, with one CUDA RNG state per GPU."""
    from infobatch_runner.engine import checkpoint

    cfg = compose_cfg("dataset.num_train=256")
    train(cfg, tmp_path)
    path = tmp_path / "checkpoints" / "last.pt"
    state = torch.load(path, weights_only=False)
    del state["config"]["trainer"]["tf32"]
    state["rng"]["cuda"] = []  # what a CPU machine saved then
    torch.save(state, path)
    resumed = checkpoint.previous_state(compose_cfg("dataset.num_train=256", "resume=auto"), tmp_path)
    assert resumed["epoch"] == 2
    checkpoint.previous_state(compose_cfg("dataset.num_train=256", "resume=auto", "trainer.checkpoint_every=3"),
                              tmp_path)  # how often a run checkpoints may change on resume
    with pytest.raises(UserError, match=r"another config \(trainer.tf32: True vs False\)"):
        checkpoint.previous_state(compose_cfg("dataset.num_train=256", "resume=auto", "trainer.tf32=false"), tmp_path)


def test_a_signal_in_a_sweep_says_how_to_continue_the_sweep_and_reports_what_finished(tmp_path, monkeypatch, capsys):
    sweep = tmp_path / "sweep"
    args = ["-m", "prune=full,infobatch", *TINY, f"hydra.sweep.dir={sweep}"]
    sigterm_after_epoch(monkeypatch, 3 + 1)  # the full run's 3 epochs, then the first of infobatch's
    status, out = run_main(monkeypatch, capsys, args)
    monkeypatch.undo()
    assert status == 128 + signal.SIGTERM and "Traceback" not in out, out
    assert "job 1_infobatch stopped by SIGTERM after epoch 1" in out, out
    assert f"continue with resume=auto hydra.sweep.dir={sweep} and the sweep's own overrides" in out, out
    report = (sweep / "report.md").read_text()
    assert "1_infobatch" in report and "did not finish" in report, "the report of what the sweep finished"
    status, out = run_main(monkeypatch, capsys, args + ["resume=auto"])
    assert status in (0, None), out
    assert json.loads((sweep / "1_infobatch" / "summary.json").read_text())["epochs"] == 3


# --- SLURM through submitit: SIGUSR2, requeue, and the job run again ---------------------------


def test_sigusr2_checkpoints_then_hands_the_job_to_submitits_requeue(tmp_path, monkeypatch, capsys):
    calls = []

    def submitit_requeue(signum, frame):  # what submitit's handler does: requeue, then exit
        calls.append(signum)
        raise SystemExit(-1)

    previous = signal.signal(signal.SIGUSR2, submitit_requeue)
    try:
        sigterm_after_epoch(monkeypatch, 1, signal.SIGUSR2)
        run = tmp_path / "run"
        status, out = run_main(monkeypatch, capsys, TINY + ["trainer.checkpoint_every=2", f"hydra.run.dir={run}"])
    finally:
        signal.signal(signal.SIGUSR2, previous)
    assert calls == [signal.SIGUSR2] and status == -1, out
    assert "stopped by SIGUSR2 after epoch 1" in out, out
    assert torch.load(run / "checkpoints" / "last.pt", weights_only=False)["epoch"] == 1, "checkpointed first"


def test_a_job_slurm_runs_again_continues_its_run_without_being_told(tmp_path, monkeypatch, capsys):
    run = tmp_path / "run"
    status, out = run_main(monkeypatch, capsys, TINY + [f"hydra.run.dir={run}"])
    assert status in (0, None), out
    whole = json.loads((run / "summary.json").read_text())
    (run / "summary.json").unlink()  # the job was stopped after its last checkpoint
    monkeypatch.setenv("SLURM_RESTART_COUNT", "1")
    status, out = run_main(monkeypatch, capsys, TINY + [f"hydra.run.dir={run}"])  # the same command, no resume=auto
    assert status in (0, None), out
    assert json.loads((run / "summary.json").read_text())["final/test_acc"] == whole["final/test_acc"]


def test_an_interrupted_job_is_told_to_continue_its_sweep_or_its_own_folder(tmp_path):
    from infobatch_runner.engine.scoring import scoring_stopped
    from infobatch_runner.engine.train import continue_with, stopped

    alone, in_sweep = continue_with(tmp_path / "run", None), continue_with(tmp_path / "s" / "1_x", tmp_path / "s")
    assert alone == f"resume=auto hydra.run.dir={tmp_path / 'run'}"
    assert in_sweep == f"resume=auto hydra.sweep.dir={tmp_path / 's'} and the sweep's own overrides (its finished " \
                       "jobs are kept)"
    assert stopped("stopped by SIGTERM after epoch 2", 2, 1, in_sweep).endswith(f"is kept: continue with {in_sweep}")
    assert stopped("stopped", None, 1, in_sweep).endswith(f"start it afresh in the same folder with {in_sweep}")
    assert str(scoring_stopped("SIGTERM", "the el2n scoring phase", in_sweep)).endswith(f"{in_sweep} (it scores again)")
