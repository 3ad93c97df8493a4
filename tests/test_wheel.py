"""The console script from a built wheel: configs packaged, entry point working from anywhere."""

import json
import os
import shutil
import subprocess
import sys
import zipfile
from pathlib import Path

from conftest import TINY

ROOT = Path(__file__).resolve().parents[1]


def test_console_script_from_a_built_wheel(tmp_path):
    # Build from a clean copy, so nothing left in the checkout's build/ can slip into the wheel.
    source = tmp_path / "source"
    source.mkdir()
    for item in ("pyproject.toml", "README.md"):
        shutil.copy2(ROOT / item, source / item)
    for item in ("conf", "infobatch_runner"):
        shutil.copytree(ROOT / item, source / item, ignore=shutil.ignore_patterns("__pycache__"))
    dist = tmp_path / "dist"
    subprocess.run([sys.executable, "-m", "build", "--wheel", "--no-isolation", "--outdir", str(dist), str(source)],
                   check=True, capture_output=True, text=True)
    wheel = next(dist.glob("infobatch_runner-*.whl"))
    names = zipfile.ZipFile(wheel).namelist()
    for config in ("config.yaml", "prune/infobatch.yaml", "experiment/cifar10_resnet18.yaml", "dataset/imagenet.yaml"):
        assert f"infobatch_runner/conf/{config}" in names, config

    site = tmp_path / "site"
    subprocess.run([sys.executable, "-m", "pip", "install", "--quiet", "--no-deps", "--no-index", "--target", str(site),
                    str(wheel)], check=True, capture_output=True, text=True)
    env = {**os.environ, "PYTHONPATH": str(site), "WANDB_MODE": "offline"}
    where = subprocess.run([sys.executable, "-c", "import infobatch_runner; print(infobatch_runner.__file__)"],
                           cwd=tmp_path, env=env, capture_output=True, text=True, check=True).stdout
    assert where.startswith(str(site)), "the test must exercise the wheel, not the source tree"

    run_dir = tmp_path / "run"
    result = subprocess.run([str(site / "bin" / "infobatch-run"), *TINY, "trainer.epochs=1", f"hydra.run.dir={run_dir}"],
                            cwd=tmp_path, env=env, capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, result.stderr
    assert json.loads((run_dir / "summary.json").read_text())["epochs"] == 1
