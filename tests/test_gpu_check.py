"""make gpu-check's dry run on the CPU (real runs at tiny sizes), and the source checkout that the GPU
box runs from: the package and its configs importable from PYTHONPATH alone, nothing installed."""

import json
import os
import subprocess
import sys
import sysconfig
import tarfile
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
PHASES = ("env", "syncdebug", "precision", "loaders", "bench", "compile", "strategies", "resume", "torchrun")


def test_dry_run_prints_the_table_with_every_phase(tmp_path):
    out = tmp_path / "out"
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    env.pop("OUT", None)
    result = subprocess.run([sys.executable, "-m", "bench.gpu_check", "--device", "cpu", "--budget", "240",
                             "--phases", "syncdebug,strategies,resume,torchrun", "--out", str(out)],
                            cwd=tmp_path, env=env, capture_output=True, text=True, timeout=400)
    assert result.returncode == 0, result.stdout[-4000:] + result.stderr[-2000:]
    table = (out / "table.txt").read_text()
    assert table.startswith("==== gpu-check on cpu") and table.strip() in result.stdout
    assert "RESULT: PASS" in table
    assert "---- phases: " + " | ".join(
        f"{p} {'SKIP' if p in ('syncdebug', 'precision', 'loaders', 'bench', 'compile') else 'PASS'}" for p in PHASES) in table

    checks = {(c["phase"], c["name"]): c for c in json.loads((out / "results.json").read_text())["checks"]}
    assert {p for p, _ in checks} == set(PHASES)
    # CUDA-only: the sync check ran its epochs on the CPU, unchecked, and says so
    for strategy in ("full", "infobatch", "random_dynamic", "epsilon_greedy", "ucb"):
        c = checks["syncdebug", f"bf16 epoch, prune={strategy}"]
        assert c["status"] == "SKIP" and "ran on cpu" in c["detail"]
    for strategy in ("full", "infobatch", "random_dynamic", "epsilon_greedy", "ucb", "el2n", "grand", "forgetting",
                     "static_random"):
        assert checks["strategies", f"prune={strategy}"]["status"] == "PASS"
    assert checks["strategies", "sweep report"]["status"] == "PASS"
    assert "metrics rows equal" in checks["resume", "kill -9, resume=auto"]["detail"]
    assert checks["torchrun", "torchrun --nproc_per_node=1"]["status"] == "PASS"
    assert checks["precision", "-"] == {"phase": "precision", "name": "-", "status": "SKIP", "detail": "not in --phases"}
    # what comes back (a few files): the table, the results, and the logs and run summaries in one archive
    assert sorted(p.name for p in out.iterdir()) == ["logs.tar.gz", "results.json", "table.txt"]
    with tarfile.open(out / "logs.tar.gz") as tar:
        logs = {Path(name).name for name in tar.getnames()}
    assert {"syncdebug.log", "strategies.log", "resume_auto.log", "torchrun.log", "strategies.ucb.summary.json"} <= logs


def test_unknown_phase_is_refused(tmp_path):
    result = subprocess.run([sys.executable, "-m", "bench.gpu_check", "--phases", "strategies,resumee", "--out", str(tmp_path)],
                            cwd=ROOT, capture_output=True, text=True, timeout=60)
    assert result.returncode == 2 and "unknown phase(s) resumee" in result.stderr


def test_a_source_checkout_on_pythonpath_composes_from_elsewhere(tmp_path):
    """As on the GPU box: no install (python -S skips site-packages' .pth files, so the editable install's
    finder is not there), only PYTHONPATH. `infobatch_runner.conf` must still be the checkout's conf/."""
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(ROOT), sysconfig.get_paths()["purelib"]])}
    code = (
        "import infobatch_runner, infobatch_runner.conf\n"
        "from hydra import compose, initialize_config_module\n"
        "with initialize_config_module(version_base='1.3', config_module='infobatch_runner.conf'):\n"
        "    cfg = compose(config_name='config', overrides=['prune=ucb', 'experiment=cifar10_resnet18'])\n"
        "print(infobatch_runner.__file__, infobatch_runner.conf.__file__, cfg.prune.name, cfg.model.name)\n"
    )
    result = subprocess.run([sys.executable, "-S", "-c", code], cwd=tmp_path, env=env, capture_output=True, text=True,
                            timeout=120)
    assert result.returncode == 0, result.stderr[-3000:]
    package, conf, prune, model = result.stdout.split()
    assert package == str(ROOT / "infobatch_runner" / "__init__.py") and conf == str(ROOT / "conf" / "__init__.py")
    assert (prune, model) == ("ucb", "resnet18")

    # and the CLI, whose @hydra.main reads pkg://infobatch_runner.conf
    result = subprocess.run([sys.executable, "-S", "-m", "infobatch_runner.cli", "--cfg", "job", "prune=el2n", "logger=none"],
                            cwd=tmp_path, env=env, capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stderr[-3000:]
    assert "name: el2n" in result.stdout
