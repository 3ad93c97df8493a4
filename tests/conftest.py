import os
import sys
from pathlib import Path

import pytest
from hydra import compose, initialize_config_module

# The worked example of a strategy in its own package: tests import its module from the source;
# only test_plugins.py installs the package (and so its entry point), in a folder of its own.
EXAMPLE = Path(__file__).resolve().parents[1] / "examples" / "loss_proportional"
sys.path.insert(0, str(EXAMPLE))

# Nothing in the tests may reach the network: W&B logs offline unless a test says otherwise.
os.environ.setdefault("WANDB_MODE", "offline")
os.environ.setdefault("WANDB_SILENT", "true")

TINY = [
    "dataset=synthetic",
    "dataset.num_train=256",
    "dataset.num_test=128",
    "dataset.image_size=16",
    "trainer.epochs=3",
    "trainer.batch_size=64",
    "trainer.progress=false",
    "logger=none",
]


@pytest.fixture
def compose_cfg():
    """Compose the packaged config as the CLI does, with the given overrides."""

    def _compose(overrides=()):
        with initialize_config_module(version_base="1.3", config_module="infobatch_runner.conf"):
            return compose(config_name="config", overrides=list(overrides))

    return _compose


def snapshot(folder) -> dict:
    """Every file under `folder` with its bytes: what a refusal must leave exactly as it was."""
    from pathlib import Path

    root = Path(folder)
    return {str(p.relative_to(root)): p.read_bytes() for p in sorted(root.rglob("*")) if p.is_file()} if root.exists() else {}


def run_main(monkeypatch, capsys, args) -> tuple[int, str]:
    """infobatch-run in this process, as `infobatch-run ARGS`: (exit status, stdout + stderr)."""
    import sys

    from infobatch_runner import cli

    monkeypatch.setattr(sys, "argv", ["infobatch-run", *args])
    try:
        cli.main()
        status = 0
    except SystemExit as exit_:
        status = exit_.code if isinstance(exit_.code, int) else 1
    captured = capsys.readouterr()
    return status, captured.out + captured.err
