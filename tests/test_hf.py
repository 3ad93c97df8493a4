"""InfoBatch in the Hugging Face Trainer and in a plain Accelerate loop: the examples of docs/library.md, run as
users run them (in one process, and under `accelerate launch` with 2 CPU processes), plan exactly
what the runner's strategy plans on the same losses; the schedule ends at the last real step."""

import os
import re
import subprocess
import sys
from pathlib import Path

import pytest
import torch

pytest.importorskip("transformers")
pytest.importorskip("accelerate")

from infobatch_runner.data.loaders import batch_starts  # noqa: E402
from pruner_spy import Recorder, check_ranks_against_runner  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]
TESTS = Path(__file__).resolve().parent
ACCELERATE_PREAMBLE = """
import torch
import torch.nn.functional as F
from torch.utils.data import DataLoader, TensorDataset
from infobatch_runner.data.idx import load_fashion_mnist
from infobatch_runner.library import IndexedDataset, Pruner

train, _ = load_fashion_mnist(None, False)
data = TensorDataset(train.images[:2000].float() / 255, train.labels[:2000])
epochs = 4
torch.manual_seed(0)
model = torch.nn.Sequential(torch.nn.Flatten(), torch.nn.Linear(784, 64), torch.nn.ReLU(), torch.nn.Linear(64, 10))
optimizer = torch.optim.SGD(model.parameters(), lr=0.1)
"""
# Runs a script with every Pruner spied on, and saves this process's record (tests/pruner_spy.py).
SPY = """
import os, sys, torch
sys.path.insert(0, {tests!r})
from pruner_spy import Patch, Recorder
recorder = Recorder(Patch())
script = {{"__name__": "__main__"}}
exec(compile(open(sys.argv[1]).read(), sys.argv[1], "exec"), script)
record = recorder.record()
if "trainer" in script:  # the Trainer example: where its schedule ended (stdout would mix both processes' lines)
    record["last_lr"] = script["trainer"].lr_scheduler.get_last_lr()
torch.save(record, os.path.join(sys.argv[2], "rank" + os.environ.get("RANK", "0") + ".pt"))
"""


def readme_block(marker: str) -> str:
    text = (ROOT / "docs" / "library.md").read_text()
    assert marker in text, f"no {marker} block in docs/library.md"
    return re.search(r"```python\n(.*?)```", text.split(marker, 1)[1], re.S).group(1)


def accelerate_launch(*argv: str, cwd: Path) -> None:
    """`accelerate launch` on 2 CPU processes (gloo). Their stdout mixes both processes' lines, so
    results travel in files."""
    env = {**os.environ, "ACCELERATE_USE_CPU": "true", "OMP_NUM_THREADS": "1", "WANDB_MODE": "disabled"}
    accelerate = Path(sys.executable).with_name("accelerate")
    result = subprocess.run([str(accelerate), "launch", "--multi_gpu", "--num_processes", "2", "--num_machines", "1",
                             "--mixed_precision", "no", "--dynamo_backend", "no", "--main_process_port", "0", *argv],
                            cwd=cwd, env=env, capture_output=True, text=True, timeout=600)
    assert result.returncode == 0, result.stderr[-3000:]


def launch_two_processes(script: str, tmp_path: Path) -> list[dict]:
    """The script on 2 processes, each spied on; their records."""
    (tmp_path / "script.py").write_text(script)
    (tmp_path / "spy.py").write_text(SPY.format(tests=str(TESTS)))
    out = tmp_path / "records"
    out.mkdir()
    accelerate_launch(str(tmp_path / "spy.py"), str(tmp_path / "script.py"), str(out), cwd=tmp_path)
    return [torch.load(out / f"rank{r}.pt") for r in (0, 1)]


@pytest.fixture
def runner_infobatch(compose_cfg):
    """The runner's prune=infobatch, whose defaults the examples use."""
    prune = compose_cfg(["prune=infobatch"]).prune
    assert (prune.ratio, prune.delta) == (0.5, 0.875)
    return prune


def test_the_readme_trainer_example_trains_the_runners_plans_and_ends_its_schedule(monkeypatch, tmp_path, capsys,
                                                                                  runner_infobatch):
    rec = Recorder(monkeypatch)
    monkeypatch.chdir(tmp_path)
    exec(compile(readme_block("<!-- hf-example -->"), "hf-example", "exec"), {"__name__": "__main__"})

    steps, last_lr = re.search(r"(\d+) optimizer steps, last learning rate (\S+)", capsys.readouterr().out).groups()
    batches = [len(batch_starts(len(indices), 64)) for _, indices, _ in rec.plans]
    assert [len(b) for b in rec.batches] == batches, "each epoch trained its own plan's batches, no more"
    assert batches[1] < batches[0], "epochs 1 and 2 pruned"
    assert int(steps) == sum(-(-b // 2) for b in batches), "accumulation of 2 steps once per pair, per epoch"
    assert float(last_lr) == 0.0, "the linear schedule ends at the last real step"
    rec.check_against_runner(runner_infobatch, 2000, 4, seed=0)


def test_the_trainer_under_accelerate_launch_on_two_processes_plans_as_the_runner(tmp_path, runner_infobatch):
    records = launch_two_processes(readme_block("<!-- hf-example -->"), tmp_path)
    check_ranks_against_runner(records, runner_infobatch, 2000, 4, seed=0)
    for e in range(4):
        shards = [torch.cat([i for i, _, _ in r["batches"][e]]) for r in records]
        assert len(shards[0]) == len(shards[1]), "equal shards, not one rank's plan trained twice"
    assert all(set(r["last_lr"]) == {0.0} for r in records), "both processes' schedules ended at the last step"


def test_the_readme_accelerate_recipe_does_not_shard_twice(tmp_path, runner_infobatch):
    script = ACCELERATE_PREAMBLE + readme_block("<!-- accelerate-example -->")
    records = launch_two_processes(script, tmp_path)
    check_ranks_against_runner(records, runner_infobatch, 2000, 4, seed=0)
    trained = [sum(len(i) for i, _, _ in r["batches"][1]) for r in records]
    assert sum(trained) >= len(records[0]["plans"][1][1]) and abs(trained[0] - trained[1]) <= 1


@pytest.fixture
def tiny_trainer_parts():
    from transformers import BertConfig, BertForSequenceClassification

    torch.manual_seed(0)
    model = BertForSequenceClassification(BertConfig(vocab_size=16, hidden_size=16, num_hidden_layers=1,
                                                     num_attention_heads=2, intermediate_size=32,
                                                     max_position_embeddings=8, num_labels=3))
    data = [{"input_ids": torch.randint(0, 16, (8,)), "labels": i % 3} for i in range(60)]
    return model, data


@pytest.mark.parametrize("kwargs,match", [
    (dict(max_steps=10), r"plans whole epochs: set num_train_epochs, not max_steps"),
    (dict(num_train_epochs=2.5), r"needs a whole num_train_epochs >= 1 \(got 2.5\)"),
    (dict(dataloader_drop_last=True), r"dataloader_drop_last=True would drop the last batch"),
    # a stream first: with max_steps the advice would otherwise go in a circle
    (dict(max_steps=10, stream=True), r"needs a map-style train_dataset"),
])
def test_what_a_pruned_run_cannot_honour_is_refused(tiny_trainer_parts, tmp_path, kwargs, match):
    from torch.utils.data import IterableDataset
    from transformers import TrainingArguments

    from infobatch_runner.integrations.hf import InfoBatchTrainer

    class Stream(IterableDataset):
        def __iter__(self):
            yield from data

    model, data = tiny_trainer_parts
    train = Stream() if kwargs.pop("stream", False) else data
    with pytest.raises(ValueError, match=match):
        InfoBatchTrainer(model=model, args=TrainingArguments(tmp_path, report_to="none", **kwargs), train_dataset=train)


@pytest.mark.parametrize("case,match", [
    ("resume=True, nothing saved", r"No valid checkpoint found in output directory"),
    ("resume from a folder that does not exist", r"Can't find a valid checkpoint at"),
    ("no labels", r"the training batches hold no 'labels'"),
    ("a model without logits", r"BertModel returns no logits .*pass per_sample_loss="),
    ("a static strategy", r"strategy 'el2n' ranks the data by scores from proxy trainings"),
])
def test_what_the_trainer_cannot_train_is_one_sentence(tiny_trainer_parts, tmp_path, case, match):
    from transformers import BertConfig, BertModel, TrainingArguments

    from infobatch_runner.integrations.hf import InfoBatchTrainer

    model, data = tiny_trainer_parts
    strategy, resume = "random_dynamic", None
    if case == "no labels":
        data = [{"input_ids": d["input_ids"]} for d in data]
    if case == "a model without logits":
        model = BertModel(BertConfig(vocab_size=16, hidden_size=16, num_hidden_layers=1, num_attention_heads=2,
                                     intermediate_size=32, max_position_embeddings=8))
    if case == "a static strategy":
        strategy = "el2n"
    if case.startswith("resume"):
        resume = True if case.startswith("resume=True") else str(tmp_path / "checkpoint-9")
    args = TrainingArguments(tmp_path / "out", num_train_epochs=2, report_to="none", per_device_train_batch_size=8,
                             save_strategy="no", remove_unused_columns=False)
    trainer = InfoBatchTrainer(model=model, args=args, train_dataset=data, strategy=strategy)
    with pytest.raises(ValueError, match=match):
        trainer.train(resume_from_checkpoint=resume)
    assert not list((tmp_path / "out").glob("checkpoint-*")), "refused before a step was saved"


def test_the_fewer_epochs_baseline_trains_its_epochs_and_ends_its_schedule(tiny_trainer_parts, tmp_path):
    """short_schedule at 0.5 over 4 epochs: 2 epochs of full data, the whole linear schedule in them
    (it used to stop after 2 with transformers' "not a single sample" and the rate at half)."""
    from transformers import TrainingArguments

    from infobatch_runner.integrations.hf import InfoBatchTrainer

    model, data = tiny_trainer_parts
    args = TrainingArguments(tmp_path, num_train_epochs=4, report_to="none", per_device_train_batch_size=8,
                             save_strategy="no", learning_rate=5e-3, lr_scheduler_type="linear")
    trainer = InfoBatchTrainer(model=model, args=args, train_dataset=data, strategy="short_schedule",
                               strategy_params={"ratio": 0.5})
    trainer.train()
    steps_per_epoch = len(batch_starts(len(data), 8))
    assert trainer.pruner.schedule_epochs == 2 and trainer.pruner.epochs == 4
    assert trainer.state.global_step == 2 * steps_per_epoch
    assert trainer.lr_scheduler.get_last_lr()[0] == pytest.approx(0.0, abs=1e-12), "the schedule ended"


def test_a_checkpoint_without_the_pruner_is_refused_and_evaluation_is_the_trainers(tiny_trainer_parts, tmp_path):
    from transformers import TrainingArguments

    from infobatch_runner.integrations.hf import InfoBatchTrainer

    model, data = tiny_trainer_parts
    trainer = InfoBatchTrainer(model=model, args=TrainingArguments(tmp_path, num_train_epochs=2, report_to="none",
                                                                   per_device_train_batch_size=8, save_strategy="no"),
                               train_dataset=data, eval_dataset=data, strategy="random_dynamic",
                               strategy_params={"ratio": 0.5})
    with pytest.raises(ValueError, match="holds no infobatch_pruner_0.pt: it was not saved by an InfoBatchTrainer"):
        trainer.train(resume_from_checkpoint=str(tmp_path))
    trainer.train()
    assert trainer.pruner.epoch == 1 and len(trainer.pruner.plan) == 30
    assert torch.isfinite(torch.tensor(trainer.evaluate()["eval_loss"])), "eval batches carry no index: the model's loss"


def test_a_causal_lm_trains_per_sequence_losses_in_bf16_with_workers(monkeypatch, tmp_path, compose_cfg):
    """The official issue's case (a causal LM): each sequence's loss is the mean over its labelled
    tokens, shifted as the model's own; the plans are the runner's, with 2 workers and bf16."""
    import torch.nn.functional as F
    from transformers import GPT2Config, GPT2LMHeadModel, TrainingArguments

    from infobatch_runner.data.idx import load_fashion_mnist
    from infobatch_runner.integrations.hf import InfoBatchTrainer, sequence_loss

    train, _ = load_fashion_mnist(None, False)
    tokens = (F.avg_pool2d(train.images[:512].float(), 4).flatten(1) / 16).long()  # 49 patch tokens per image
    torch.manual_seed(0)
    model = GPT2LMHeadModel(GPT2Config(vocab_size=16, n_positions=49, n_embd=32, n_layer=1, n_head=2,
                                       bos_token_id=0, eos_token_id=0))
    with torch.no_grad():
        out = model(input_ids=tokens[:8], labels=tokens[:8])
        assert sequence_loss(out, tokens[:8], causal=True).mean() == pytest.approx(out.loss.item(), rel=1e-5)
        masked = tokens[:2].clone()
        masked[0, 30:] = -100  # a shorter sequence: its mean over its own 29 predicted tokens
        two = model(input_ids=tokens[:2])
        per_token = F.cross_entropy(two.logits[0, :29].float(), tokens[0, 1:30], reduction="mean")
        assert sequence_loss(two, masked, causal=True)[0] == pytest.approx(per_token.item(), rel=1e-6)
    rec = Recorder(monkeypatch)
    args = TrainingArguments(tmp_path, num_train_epochs=3, per_device_train_batch_size=32, learning_rate=1e-3,
                             save_strategy="no", report_to="none", seed=0, dataloader_num_workers=2, bf16=True,
                             use_cpu=True, disable_tqdm=True)
    data = [{"input_ids": t, "labels": t.clone()} for t in tokens]
    trainer = InfoBatchTrainer(model=model, args=args, train_dataset=data, strategy_params={"delta": 0.67})
    trainer.train()
    assert trainer.lr_scheduler.get_last_lr()[0] == 0.0 and len(rec.plans[1][1]) < 512
    rec.check_against_runner(compose_cfg(["prune=infobatch", "prune.delta=0.67"]).prune, 512, 3, seed=0)


def test_a_run_stopped_mid_epoch_resumes_from_its_checkpoint_to_the_same_weights(tmp_path, monkeypatch):
    """Checkpoints every 3 steps; a run stopped after step 14 resumes from checkpoint-12, inside epoch 2
    after the pruned epoch 1 (where the Trainer's own guess from its step count and the first epoch's
    length lands a step off), and ends with the uninterrupted run's plans, batches, learning rate and
    weights."""
    import torch.nn.functional as F
    from transformers import BertConfig, BertForSequenceClassification, TrainerCallback, TrainingArguments

    from infobatch_runner.data.idx import load_fashion_mnist
    from infobatch_runner.integrations.hf import InfoBatchTrainer

    train, _ = load_fashion_mnist(None, False)
    patches = F.avg_pool2d(train.images[:300].float(), 4).flatten(1)
    data = [{"input_ids": (p / 16).long(), "labels": int(y)} for p, y in zip(patches, train.labels[:300])]

    class StopAfter(TrainerCallback):
        def __init__(self, step):
            self.step = step

        def on_step_end(self, args, state, control, **kwargs):
            if state.global_step == self.step:
                control.should_training_stop = True

    def trainer(out, *callbacks):
        torch.manual_seed(0)
        model = BertForSequenceClassification(BertConfig(
            vocab_size=16, hidden_size=16, num_hidden_layers=1, num_attention_heads=2, intermediate_size=32,
            max_position_embeddings=49, num_labels=10, hidden_dropout_prob=0.0, attention_probs_dropout_prob=0.0))
        args = TrainingArguments(out, num_train_epochs=4, per_device_train_batch_size=32, learning_rate=3e-3,
                                 gradient_accumulation_steps=2, lr_scheduler_type="linear", save_strategy="steps",
                                 save_steps=3, report_to="none", seed=0, disable_tqdm=True)
        return InfoBatchTrainer(model=model, args=args, train_dataset=data, callbacks=list(callbacks),
                                strategy_params={"delta": 0.75})

    rec = Recorder(monkeypatch)
    whole = trainer(tmp_path / "whole")
    whole.train()
    whole_plans, whole_lrs = list(rec.plans), [b for epoch in rec.batches for b in epoch]
    rec.plans.clear(), rec.batches.clear()
    stopped = trainer(tmp_path / "stopped", StopAfter(14))
    stopped.train()
    checkpoint = tmp_path / "stopped" / "checkpoint-12"
    saved = torch.load(checkpoint / "infobatch_pruner_0.pt", weights_only=False)
    assert saved["epoch"] == 2 and 0 < saved["batches_done"] < len(batch_starts(len(saved["plan"]["indices"]), 32))
    assert len(whole_plans[1][1]) < 300, "epoch 1 was pruned"
    rec.plans.clear(), rec.batches.clear()
    resumed = trainer(tmp_path / "stopped")
    resumed.train(resume_from_checkpoint=str(checkpoint))

    assert [e for e, *_ in rec.plans] == [3], "epoch 2's plan restored, then 3 planned"
    for (e, indices, weights), (e2, indices2, weights2) in zip(rec.plans, whole_plans[3:]):
        assert e == e2 and torch.equal(indices, indices2) and torch.equal(weights, weights2)
    trained = [b for epoch in rec.batches for b in epoch]
    assert all(torch.equal(a[0], b[0]) for a, b in zip(trained, whole_lrs[-len(trained):])), "the same batches"
    assert resumed.state.global_step == whole.state.global_step
    assert resumed.lr_scheduler.get_last_lr() == whole.lr_scheduler.get_last_lr()
    assert set(whole.lr_scheduler.get_last_lr()) == {0.0}, "the schedule ended at the last real step"
    for (name, a), (_, b) in zip(whole.model.state_dict().items(), resumed.model.state_dict().items()):
        assert torch.equal(a, b), name


RESUME_SCRIPT = """
import os, sys, torch
import torch.nn.functional as F
from transformers import BertConfig, BertForSequenceClassification, TrainerCallback, TrainingArguments
from infobatch_runner.data.idx import load_fashion_mnist
from infobatch_runner.integrations.hf import InfoBatchTrainer

train, _ = load_fashion_mnist(None, False)
patches = F.avg_pool2d(train.images[:600].float(), 4).flatten(1)
data = [{"input_ids": (p / 16).long(), "labels": int(y)} for p, y in zip(patches, train.labels[:600])]


class StopAfter(TrainerCallback):
    def on_step_end(self, args, state, control, **kwargs):
        control.should_training_stop = state.global_step == 14


torch.manual_seed(0)
model = BertForSequenceClassification(BertConfig(
    vocab_size=16, hidden_size=16, num_hidden_layers=1, num_attention_heads=2, intermediate_size=32,
    max_position_embeddings=49, num_labels=10, hidden_dropout_prob=0.0, attention_probs_dropout_prob=0.0))
mode = sys.argv[1]
args = TrainingArguments("whole" if mode == "whole" else "stopped", num_train_epochs=4, per_device_train_batch_size=32,
                         learning_rate=3e-3, gradient_accumulation_steps=2, save_strategy="steps", save_steps=3,
                         report_to="none", seed=0, disable_tqdm=True)
trainer = InfoBatchTrainer(model=model, args=args, train_dataset=data, strategy_params={"delta": 0.75},
                           callbacks=[StopAfter()] if mode == "stop" else [])
trainer.train(resume_from_checkpoint="stopped/checkpoint-12" if mode == "resume" else None)
torch.save({"weights": trainer.model.state_dict(), "step": trainer.state.global_step, "epoch": trainer.pruner.epoch},
           f"{mode}-{os.environ['RANK']}.pt")
"""


def test_two_processes_stopped_mid_epoch_resume_to_the_same_weights(tmp_path):
    """Under accelerate launch every process saves its own pruner state, with its losses not merged
    yet; resumed from checkpoint-12 (inside epoch 2, after the pruned epoch 1), both end with the
    uninterrupted run's weights."""
    (tmp_path / "resume.py").write_text(RESUME_SCRIPT)
    for mode in ("whole", "stop", "resume"):
        accelerate_launch("resume.py", mode, cwd=tmp_path)
    end = {(mode, r): torch.load(tmp_path / f"{mode}-{r}.pt") for mode in ("whole", "stop", "resume") for r in (0, 1)}
    saved = [torch.load(tmp_path / "stopped" / "checkpoint-12" / f"infobatch_pruner_{r}.pt", weights_only=False)
             for r in (0, 1)]
    assert [s["epoch"] for s in saved] == [2, 2] and all(s["pending"] is not None for s in saved), "mid-epoch"
    whole = end["whole", 0]
    assert whole["epoch"] == 3
    for r in (0, 1):
        assert end["stop", r]["step"] == 14 < whole["step"], "stopped after checkpoint-12, before the end"
        resumed = end["resume", r]
        assert (resumed["step"], resumed["epoch"]) == (whole["step"], whole["epoch"])
        assert all(torch.equal(w, resumed["weights"][k]) for k, w in whole["weights"].items()), f"rank {r}"
