"""A strategy from another package (the worked example, examples/loss_proportional), installed from
its built wheel as a user would: found through its entry point by infobatch-run, --help, the report
and W&B, the library's Pruner, the Lightning callback, the Hugging Face Trainer and the leaderboard;
its parameters typed and checked as ours; a broken registration one sentence naming its package."""

import json
import os
import re
import shutil
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest
import torch

from conftest import EXAMPLE, TINY
from infobatch_runner.pruning import registry

BIN = Path(sys.executable).parent
TINY_WANDB = [a for a in TINY if a != "logger=none"] + ["logger=wandb"]


@pytest.fixture(scope="module")
def site(tmp_path_factory):
    """The example package built into a wheel and installed into a folder of its own."""
    root = tmp_path_factory.mktemp("example")
    source = root / "source"
    shutil.copytree(EXAMPLE, source, ignore=shutil.ignore_patterns("__pycache__", "build", "*.egg-info"))
    subprocess.run([sys.executable, "-m", "build", "--wheel", "--no-isolation", "--outdir", str(root / "dist"),
                    str(source)], check=True, capture_output=True, text=True)
    wheel = next((root / "dist").glob("infobatch_loss_proportional-*.whl"))
    target = root / "site"
    subprocess.run([sys.executable, "-m", "pip", "install", "--quiet", "--no-deps", "--no-index", "--target",
                    str(target), str(wheel)], check=True, capture_output=True, text=True)
    return target


def run(args, cwd, site_path, timeout=300, program="infobatch-run"):
    env = {**os.environ, "PYTHONPATH": str(site_path), "WANDB_MODE": "offline", "WANDB_SILENT": "true"}
    command = [str(BIN / program), *args] if program == "infobatch-run" else [sys.executable, *args]
    return subprocess.run(command, cwd=cwd, env=env, capture_output=True, text=True, timeout=timeout)


def test_the_example_passes_its_own_test_installed(site, tmp_path):
    shutil.copy2(EXAMPLE / "test_loss_proportional.py", tmp_path)
    where = run(["-c", "import loss_proportional; print(loss_proportional.__file__)"], tmp_path, site, program="python")
    assert where.stdout.startswith(str(site)), "the installed package, not the source"
    result = run(["-m", "pytest", "-q", "-p", "no:cacheprovider", "test_loss_proportional.py"], tmp_path, site,
                 program="python")
    assert result.returncode == 0 and "2 passed" in result.stdout, result.stdout[-3000:] + result.stderr[-3000:]


def test_infobatch_run_trains_it_beside_ours_into_the_report_and_wandb(site, tmp_path):
    from wandb_files import offline_runs

    sweep = tmp_path / "sweep"
    result = run(["-m", *TINY_WANDB, "prune=full,loss_proportional", "prune.ratio=0.5", f"hydra.sweep.dir={sweep}"],
                 tmp_path, site)
    assert result.returncode == 0, result.stderr[-3000:]
    job = sweep / "1_loss_proportional"
    summary = json.loads((job / "summary.json").read_text())
    # epoch 0 trains all 256, epochs 1 and 2 keep round(0.5 x 256) = 128 each
    assert summary["strategy"] == "loss_proportional" and summary["samples_trained"] == 256 + 2 * 128
    assert summary["prune"] == {"name": "loss_proportional", "ratio": 0.5, "floor": 0.1, "target_saving": None}
    report = (sweep / "report.csv").read_text()
    assert "loss_proportional" in report and "loss_proportional ratio=0.5" in (sweep / "report.md").read_text()
    (wandb,) = offline_runs(job)
    assert wandb.value("prune")["name"] == "loss_proportional"
    assert wandb.summary["saving_samples"] == pytest.approx(summary["saving_samples"])


@pytest.mark.parametrize("override,said", [
    ("prune.flor=0.2", "prune.flor is not a setting of prune; did you mean prune.floor?"),  # as for ours
    ("+prune.flor=0.2", "prune.flor is not a setting of prune=loss_proportional; did you mean prune.floor?"),
    ("prune.floor=abc", "Error merging override prune.floor=abc: Value 'abc' of type 'str' could not be converted "
                         "to Float."),  # typed from the annotation, at composition as ours
    ("prune.floor=2", "prune.floor must be in (0, 1] (got 2.0)."),  # the strategy's own check, before training
])
def test_a_typo_or_a_bad_value_of_its_parameters_is_refused_before_training(site, tmp_path, override, said):
    result = run([*TINY, "prune=loss_proportional", override, f"hydra.run.dir={tmp_path / 'run'}"], tmp_path, site)
    out = result.stdout + result.stderr
    assert result.returncode != 0 and said in out and "Traceback" not in out, out[-3000:]
    assert not (tmp_path / "run" / "metrics.csv").exists()


def test_help_lists_it_among_the_prune_options(site, tmp_path):
    result = run(["--help"], tmp_path, site)
    line = next(line for line in result.stdout.splitlines() if line.startswith("prune:"))
    assert "loss_proportional" in line and "infobatch" in line, line


def test_the_leaderboard_takes_it(site, tmp_path):
    board = tmp_path / "board"
    result = run(["-m", "infobatch_runner.leaderboard", *TINY, "trainer.warmup_steps=0", "trainer.checkpoint_every=0",
                  f"hydra.sweep.dir={board}", "--strategies", "loss_proportional", "--savings", "0.5,0.7", "--seeds",
                  "0", "--long", "trainer.epochs=4 dataset.limit_train=192"], tmp_path, site, program="python")
    assert result.returncode == 0, result.stderr[-3000:]
    table = [line for line in (board / "leaderboard.md").read_text().splitlines() if line.startswith("| ")]
    assert table[0] == "| strategy | 3 ep · 50% saved | 3 ep · 70% saved | 4 ep · 50% saved | 4 ep · 70% saved |"
    rows = {line.split(" | ")[0].lstrip("| "): line.split(" | ")[1:] for line in table[1:]}
    assert set(rows) == {"short_schedule", "loss_proportional"}, "the baselines always run"
    # 3 epochs, its first all data: it saves at most 2/3 x (255/256) = 66.4%, so 70% is out of reach
    assert [("unattainable" in c) for c in rows["loss_proportional"]] == [False, True, False, False]
    assert "Δ " in rows["loss_proportional"][0] and "time" in rows["loss_proportional"][0]


@pytest.fixture
def installed_here(site, monkeypatch):
    """The example's entry point visible to this process (as after `pip install` in a notebook)."""
    monkeypatch.syspath_prepend(str(site))
    registry.forget()
    yield
    registry.forget()


def test_the_library_pruner_and_the_lightning_callback_find_it(installed_here, tmp_path):
    L = pytest.importorskip("lightning.pytorch")
    from infobatch_runner.integrations.lightning import InfoBatchCallback
    from infobatch_runner.integrations.pruner import Pruner
    from test_library import fashion_subset, pruned_classifier

    pruner = Pruner("loss_proportional", 100, 3, seed=0, ratio=0.3)
    pruner.set_epoch(1)
    assert type(pruner.strategy).__name__ == "LossProportional" and len(pruner.plan) == 70
    with pytest.raises(TypeError, match="unexpected keyword argument 'flor'"):
        Pruner("loss_proportional", 100, 3, flor=0.2)

    callback = InfoBatchCallback("loss_proportional", 300, seed=0, ratio=0.5)
    trainer = L.Trainer(max_epochs=3, accelerator="cpu", logger=False, enable_progress_bar=False,
                        enable_checkpointing=False, enable_model_summary=False, default_root_dir=tmp_path,
                        callbacks=[callback])
    trainer.fit(pruned_classifier(L, fashion_subset(300), batch_size=64)())
    assert type(callback.pruner.strategy).__name__ == "LossProportional" and len(callback.pruner.plan) == 150


def test_the_hugging_face_trainer_finds_it(installed_here, tmp_path):
    pytest.importorskip("transformers")
    from transformers import BertConfig, BertForSequenceClassification, TrainingArguments

    from infobatch_runner.integrations.hf import InfoBatchTrainer

    torch.manual_seed(0)
    model = BertForSequenceClassification(BertConfig(vocab_size=16, hidden_size=16, num_hidden_layers=1,
                                                     num_attention_heads=2, intermediate_size=32,
                                                     max_position_embeddings=8, num_labels=3))
    data = [{"input_ids": torch.randint(0, 16, (8,)), "labels": i % 3} for i in range(64)]
    args = TrainingArguments(tmp_path, num_train_epochs=2, report_to="none", per_device_train_batch_size=8,
                             save_strategy="no")
    trainer = InfoBatchTrainer(model=model, args=args, train_dataset=data, strategy="loss_proportional",
                               strategy_params={"ratio": 0.5})
    trainer.train()
    assert type(trainer.pruner.strategy).__name__ == "LossProportional"
    assert trainer.state.global_step == 64 // 8 + 32 // 8, "epoch 0 all data, epoch 1 half"


BROKEN = """\
[infobatch_runner.strategies]
infobatch = loss_proportional:LossProportional
notastrategy = os:getcwd
missing = no_such_module:Thing
"""


@pytest.fixture
def broken_site(tmp_path):
    """A package whose three entry points cannot be strategies: a clash, not a Strategy, an import error."""
    info = tmp_path / "broken" / "broken_plugins-0.1.dist-info"
    info.mkdir(parents=True)
    (info / "METADATA").write_text("Metadata-Version: 2.1\nName: broken-plugins\nVersion: 0.1\n")
    (info / "entry_points.txt").write_text(BROKEN)
    return f"{tmp_path / 'broken'}{os.pathsep}{EXAMPLE}"


@pytest.mark.parametrize("name,said", [
    ("missing", "entry point 'missing' of package 'broken-plugins' (no_such_module:Thing) failed to import: "
                "ModuleNotFoundError: No module named 'no_such_module'"),
    ("notastrategy", "entry point 'notastrategy' of package 'broken-plugins' (os:getcwd) is <built-in function getcwd>, "
                     "not a subclass of infobatch_runner.pruning.Strategy."),
])
def test_an_entry_point_that_cannot_be_a_strategy_is_one_sentence_naming_its_package(broken_site, tmp_path, name,
                                                                                      said):
    result = run([*TINY, f"prune={name}", f"hydra.run.dir={tmp_path / 'run'}"], tmp_path, broken_site)
    out = result.stdout + result.stderr
    assert result.returncode != 0 and f"infobatch-run: error: {said}" in out and "Traceback" not in out, out[-3000:]


def test_a_clash_with_ours_leaves_ours_and_says_so(broken_site, tmp_path):
    result = run([*TINY, "trainer.epochs=1", f"hydra.run.dir={tmp_path / 'run'}"], tmp_path, broken_site)
    assert result.returncode == 0, result.stderr[-3000:]
    assert ("entry point 'infobatch' of package 'broken-plugins' (loss_proportional:LossProportional) clashes with "
            "the built-in strategy 'infobatch' and is left out; rename the entry point.") in result.stderr
    assert json.loads((tmp_path / "run" / "summary.json").read_text())["prune"]["delta"] == 0.875, "ours ran"


def test_the_readme_shows_the_example_s_own_entry_point():
    page = (EXAMPLE.parents[1] / "docs" / "your-own-strategy.md").read_text()
    block = re.search(r"```toml\n(.*?)```", page, re.S).group(1)
    assert textwrap.dedent(block).strip() in (EXAMPLE / "pyproject.toml").read_text()


def test_the_config_looks_for_the_registry_s_entry_points_without_importing_torch():
    from infobatch_runner.config.strategy_schema import ENTRY_POINT_GROUP

    assert ENTRY_POINT_GROUP == registry.GROUP
