"""A sweep logged to W&B says one W&B line per job and nothing from matplotlib."""

import os
import re
import subprocess
import sys
from pathlib import Path

SCRIPT = str(Path(sys.executable).with_name("infobatch-run"))
JOBS = ("0_full", "1_infobatch")


def test_a_wandb_sweep_prints_one_wandb_line_per_job_and_no_warnings(tmp_path):
    # What a user sees: none of the test suite's WANDB_* settings (conftest sets WANDB_SILENT), no
    # MPLBACKEND; offline (no network) by logger.mode, as on the command line of the issue.
    env = {k: v for k, v in os.environ.items() if not k.startswith(("WANDB_", "MPL", "PYTHONWARNINGS"))}
    sweep = tmp_path / "sweep"
    args = ["-m", "prune=full,infobatch", "dataset=synthetic", "dataset.num_train=256", "dataset.num_test=128",
            "dataset.image_size=16", "trainer.epochs=3", "trainer.batch_size=64", "trainer.progress=false",
            "logger=wandb", "logger.mode=offline", f"hydra.sweep.dir={sweep}"]
    result = subprocess.run([SCRIPT, *args], cwd=tmp_path, env=env, capture_output=True, text=True, timeout=300,
                            stdin=subprocess.DEVNULL)
    out = result.stdout + result.stderr
    assert result.returncode == 0, out
    lines = out.splitlines()

    wandb_lines = [line for line in lines if re.match(r"\s*wandb:", line) or "W&B" in line]
    assert len(wandb_lines) <= len(JOBS), "\n".join(wandb_lines)
    for job in JOBS:  # the one line of each job says where its offline run is and how to upload it
        assert [line for line in wandb_lines if f"/{job}/wandb/offline-run-" in line and "wandb sync" in line], out
        assert list((sweep / job / "wandb").glob("offline-run-*/run-*.wandb")), f"{job}: no W&B run data written"
    assert list(sweep.glob("wandb/offline-run-*/run-*.wandb")), "the sweep's report run was not logged"

    noise = [line for line in lines if re.search(r"warn|matplotlib|tight_layout|legend", line, re.IGNORECASE)]
    assert not noise, "\n".join(noise)
    plots = {p.name for p in sweep.glob("*.png")}
    assert plots == {"accuracy_vs_saving.png", "accuracy_curves.png", "kept_fraction.png"}
