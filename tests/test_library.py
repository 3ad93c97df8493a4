"""The library API (infobatch_runner.library) and the Lightning callback: in a user's own loop they
train exactly the plans the runner's strategy makes from the same losses, len(loader) is each
epoch's before it starts, the loss is mean(w * loss), shards are equal, state round-trips."""

import collections
import io
import json
import math
import re
import subprocess
import sys
from pathlib import Path

import pytest
import torch
import torch.distributed as dist
import torch.multiprocessing as mp
import torch.nn.functional as F
from torch.utils.data import DataLoader, TensorDataset

from infobatch_runner.data.idx import load_fashion_mnist
from infobatch_runner.data.loaders import batch_starts
from infobatch_runner.engine.distributed import World, shard
from infobatch_runner.integrations.batches import IndexedDataset, PrunedBatchSampler
from infobatch_runner.integrations.pruner import Pruner
from pruner_spy import Recorder

ROOT = Path(__file__).resolve().parents[1]
MARKER = "<!-- library-example -->"
N, EPOCHS, BATCH = 1001, 4, 32


def example_code() -> str:
    """The plain-PyTorch example of the library page: the test runs the very code users read."""
    text = (ROOT / "docs" / "library.md").read_text()
    assert MARKER in text, f"no {MARKER} block in docs/library.md"
    return re.search(r"```python\n(.*?)```", text.split(MARKER, 1)[1], re.S).group(1)


def losses_for(idx, epoch):
    return ((idx.float() * 0.37 + epoch).sin() + 1.5).float()


def fashion_subset(n: int) -> TensorDataset:
    train, _ = load_fashion_mnist(None, False)
    return TensorDataset(train.images[:n].float() / 255, train.labels[:n])


def pruned_classifier(L, data, batch_size: int, hidden: int | None = None, validate: bool = False):
    """A LightningModule class: a small classifier of `data` trained through the callback's pruner
    (self.pruner), seeded at construction; with `validate`, a validation loss to checkpoint on."""
    class Net(L.LightningModule):
        def __init__(self):
            super().__init__()
            torch.manual_seed(0)
            layers = [torch.nn.Linear(784, hidden), torch.nn.ReLU(), torch.nn.Linear(hidden, 10)] if hidden else \
                [torch.nn.Linear(784, 10)]
            self.net = torch.nn.Sequential(torch.nn.Flatten(), *layers)

        def train_dataloader(self):
            return DataLoader(IndexedDataset(data), batch_sampler=self.pruner.batch_sampler(batch_size))

        def training_step(self, batch, batch_idx):
            x, y, idx = batch
            return self.pruner.loss(F.cross_entropy(self.net(x), y, reduction="none"), idx)

        def configure_optimizers(self):
            return torch.optim.SGD(self.parameters(), lr=0.1)

        if validate:
            def val_dataloader(self):
                return DataLoader(data, batch_size=300)

            def validation_step(self, batch, batch_idx):
                self.log("val_loss", F.cross_entropy(self.net(batch[0]), batch[1]))

    return Net


@pytest.mark.parametrize("workers", [0, 2])
def test_readme_example_trains_the_runners_plans(workers, monkeypatch, tmp_path, capsys, compose_cfg):
    code = example_code()
    assert code.count("num_workers=0") == 1 and len(code.strip().splitlines()) <= 25
    rec = Recorder(monkeypatch)
    monkeypatch.chdir(tmp_path)
    exec(compile(code.replace("num_workers=0", f"num_workers={workers}"), "library-example", "exec"), {})

    printed = [int(n) for n in re.findall(r"epoch \d+: (\d+) batches", capsys.readouterr().out)]
    assert printed == [len(b) for b in rec.batches], "len(loader) before each epoch = the batches it yielded"
    assert [len(indices) < 2000 for _, indices, _ in rec.plans] == [False, True, True, False], \
        "epochs 1 and 2 pruned; epoch 3 = floor(0.875 x 4) anneals"
    for (_, indices, _), batches in zip(rec.plans, rec.batches):
        assert torch.equal(torch.cat([idx for idx, *_ in batches]), indices), "the loader walked the plan"
    prune = compose_cfg(["prune=infobatch"]).prune
    assert (prune.ratio, prune.delta) == (0.5, 0.875), "the example's parameters are the runner's defaults"
    rec.check_against_runner(prune, 2000, 4, seed=0)
    assert torch.load(tmp_path / "checkpoint.pt")["pruner"]["epoch"] == 3


def test_lightning_callback_trains_the_runners_plans(monkeypatch, tmp_path, compose_cfg):
    L = pytest.importorskip("lightning.pytorch")
    from infobatch_runner.integrations.lightning import InfoBatchCallback

    data = fashion_subset(2000)
    rec = Recorder(monkeypatch)

    Net = pruned_classifier(L, data, batch_size=128, hidden=64)

    class Counter(L.Callback):
        def __init__(self):
            self.lengths, self.limits, self.trained = [], [], []

        def on_train_epoch_start(self, trainer, module):
            self.lengths.append(len(trainer.train_dataloader))
            self.limits.append(trainer.num_training_batches)
            self.trained.append(0)

        def on_train_batch_end(self, trainer, module, *args):
            self.trained[-1] += 1

    counter = Counter()
    trainer = L.Trainer(max_epochs=3, limit_train_batches=0.75, accelerator="cpu", logger=False,
                        enable_checkpointing=False, enable_progress_bar=False, enable_model_summary=False,
                        default_root_dir=tmp_path,
                        callbacks=[InfoBatchCallback("infobatch", 2000, seed=0, ratio=0.5, delta=0.875), counter])
    trainer.fit(Net())

    planned = [len(batch_starts(len(indices), 128)) for _, indices, _ in rec.plans]
    assert counter.lengths == planned and planned[1] < planned[0], "Lightning measured each epoch's own plan"
    assert counter.limits == counter.trained == [int(0.75 * n) for n in planned]
    rec.check_against_runner(compose_cfg(["prune=infobatch"]).prune, 2000, 3, seed=0)


def test_lightning_resumed_from_a_checkpoint_plans_as_the_uninterrupted_run(monkeypatch, tmp_path):
    L = pytest.importorskip("lightning.pytorch")
    from lightning.pytorch.callbacks import ModelCheckpoint

    from infobatch_runner.integrations.lightning import InfoBatchCallback

    data = fashion_subset(600)
    rec = Recorder(monkeypatch)

    Net = pruned_classifier(L, data, batch_size=64, validate=True)

    def fit(max_epochs, folder, ckpt=None):
        callbacks = [InfoBatchCallback("infobatch", 600, 4, seed=0, delta=0.75),
                     ModelCheckpoint(dirpath=folder, monitor="val_loss", save_last=True)]  # saved at validation end
        L.Trainer(max_epochs=max_epochs, accelerator="cpu", logger=False, enable_progress_bar=False,
                  enable_model_summary=False, num_sanity_val_steps=0, callbacks=callbacks).fit(Net(), ckpt_path=ckpt)
        plans = {e: indices for e, indices, _ in rec.plans}
        rec.plans.clear()
        return plans

    whole = fit(4, tmp_path / "a")
    first = fit(2, tmp_path / "b")
    second = fit(4, tmp_path / "b", tmp_path / "b" / "last.ckpt")
    assert sorted(first) == [0, 1] and sorted(second) == [2, 3], "no plan for an epoch that is not trained"
    assert all(torch.equal(whole[e], {**first, **second}[e]) for e in range(4))
    assert len(whole[1]) < 600


def test_a_lightning_callback_reused_for_a_second_fit_plans_that_fits_epochs(monkeypatch, tmp_path):
    L = pytest.importorskip("lightning.pytorch")
    from infobatch_runner.integrations.lightning import InfoBatchCallback

    data = fashion_subset(600)
    rec = Recorder(monkeypatch)

    Net = pruned_classifier(L, data, batch_size=64)

    def fit(callback, max_epochs):
        torch.manual_seed(0)
        L.Trainer(max_epochs=max_epochs, accelerator="cpu", logger=False, enable_progress_bar=False,
                  enable_checkpointing=False, enable_model_summary=False, default_root_dir=tmp_path,
                  callbacks=[callback]).fit(Net())
        plans = [(e, indices) for e, indices, _ in rec.plans]
        rec.plans.clear()
        return plans

    reused = InfoBatchCallback("infobatch", 600, seed=0, delta=0.75)
    fit(reused, 2)
    second = fit(reused, 6)
    assert reused.pruner.epochs == 6, "the second fit's max_epochs, not the first's 2"
    fresh = fit(InfoBatchCallback("infobatch", 600, seed=0, delta=0.75), 6)
    assert [e for e, _ in second] == list(range(6))
    assert all(torch.equal(a, b) for (_, a), (_, b) in zip(second, fresh)), "a new fit is a new run"


def test_the_lightning_fewer_epochs_baseline_stops_after_its_epochs(tmp_path):
    """short_schedule at 0.5 over 4 epochs trains 2, and the module can size its schedule on them."""
    L = pytest.importorskip("lightning.pytorch")
    from infobatch_runner.integrations.lightning import InfoBatchCallback

    data = fashion_subset(300)
    callback = InfoBatchCallback("short_schedule", 300, seed=0, ratio=0.5)
    trainer = L.Trainer(max_epochs=4, accelerator="cpu", logger=False, enable_progress_bar=False,
                        enable_checkpointing=False, enable_model_summary=False, default_root_dir=tmp_path,
                        callbacks=[callback])
    trainer.fit(pruned_classifier(L, data, batch_size=64)())
    assert callback.pruner.schedule_epochs == 2 and trainer.current_epoch == 2, "epochs 3 and 4 would be empty"


def test_two_replicas_take_equal_shards_that_cover_the_plan():
    pruners = [Pruner("random_dynamic", N, EPOCHS, seed=0, ratio=0.3, num_replicas=2, rank=r) for r in (0, 1)]
    samplers = [PrunedBatchSampler(p, BATCH) for p in pruners]
    for s in samplers:
        s.set_epoch(0)
    plan = pruners[0].plan
    assert len(plan) == 701 and torch.equal(plan.indices, pruners[1].plan.indices), "one plan, from one seed"
    assert len(samplers[0]) == len(samplers[1])
    walked = [sum(list(s), []) for s in samplers]
    assert len(walked[0]) == len(walked[1]) == 351, "equal shards: the plan padded by its head"
    assert set(walked[0]) | set(walked[1]) == set(plan.indices.tolist())
    for r in (0, 1):
        assert walked[r] == shard(plan, World(r, 2, r)).indices.tolist()

    idx = torch.tensor(walked[0][:2])
    pruners[0].loss(torch.ones(2), idx)
    saved = pruners[0].state_dict()  # mid-epoch: this rank's losses, not merged yet, travel with its state
    assert torch.equal(saved["pending"]["indices"], idx) and torch.equal(saved["pending"]["losses"], torch.ones(2))
    with pytest.raises(ValueError, match="rank 0's of 2 replicas, saved mid-epoch"):
        Pruner("random_dynamic", N, EPOCHS, seed=0, ratio=0.3, num_replicas=2, rank=1).load_state_dict(saved)
    again = Pruner("random_dynamic", N, EPOCHS, seed=0, ratio=0.3, num_replicas=2, rank=0)
    again.load_state_dict(saved)
    assert torch.equal(again.state_dict()["pending"]["indices"], idx) and again.batches_done == 1
    with pytest.raises(RuntimeError, match="init_process_group"):
        pruners[0].set_epoch(1)


def library_rank_main(rank, store, out):
    dist.init_process_group("gloo", init_method=f"file://{store}", rank=rank, world_size=2)
    pruner = Pruner("infobatch", N, EPOCHS, seed=0, delta=0.75)  # the world is read from torch.distributed
    sampler = pruner.batch_sampler(BATCH)
    plans = []
    for e in range(EPOCHS):
        sampler.set_epoch(e)
        plans.append(pruner.plan.indices.clone())
        for batch in sampler:
            idx = torch.tensor(batch)
            pruner.loss(losses_for(idx, e), idx)
    pruner.end_epoch()
    torch.save({"plans": plans, "state": pruner.state_dict(), "world": (pruner.world.rank, pruner.world.size)},
               out / f"rank{rank}.pt")
    dist.destroy_process_group()


def test_two_gloo_ranks_merge_once_per_epoch_and_plan_as_one_process(tmp_path):
    mp.spawn(library_rank_main, args=(str(tmp_path / "store"), tmp_path), nprocs=2, join=True)
    r0, r1 = (torch.load(tmp_path / f"rank{r}.pt") for r in (0, 1))
    assert (r0["world"], r1["world"]) == ((0, 2), (1, 2))
    single = Pruner("infobatch", N, EPOCHS, seed=0, delta=0.75)
    for e in range(EPOCHS):
        single.set_epoch(e)
        assert torch.equal(single.plan.indices, r0["plans"][e]) and torch.equal(r0["plans"][e], r1["plans"][e])
        single.loss(losses_for(single.plan.indices, e), single.plan.indices)
    assert len(r0["plans"][1]) < N
    for key in ("score", "seen"):
        assert torch.equal(r0["state"]["strategy"][key], r1["state"]["strategy"][key])
        assert torch.equal(r0["state"]["strategy"][key], single.strategy.state_dict()[key])


@pytest.mark.parametrize("name, params", [("infobatch", {"delta": 0.75}), ("infobatch", {"target_saving": 0.2}),
                                          ("epsilon_greedy", {}), ("ucb", {"target_saving": 0.4}),
                                          ("random_dynamic", {"ratio": 0.3, "interval": 2}),
                                          ("random_dynamic", {"replacement": False}), ("rs2", {"ratio": 0.7}),
                                          ("seta", {}), ("seta", {"target_saving": 0.5})])
def test_state_round_trip_mid_epoch_continues_identically(name, params):
    def run(stop_at=None):
        pruner = Pruner(name, N, EPOCHS, seed=1, **params)
        sampler, plans = pruner.batch_sampler(BATCH), []
        for e in range(EPOCHS):
            sampler.set_epoch(e)
            plans.append((pruner.plan.indices.clone(), pruner.plan.weights.clone()))
            batches = list(sampler)
            for k, batch in enumerate(batches):
                if (e, k) == stop_at:
                    saved = io.BytesIO()
                    torch.save(pruner.state_dict(), saved)
                    pruner = Pruner(name, N, EPOCHS, seed=999, **params)  # everything comes from the state
                    pruner.load_state_dict(torch.load(io.BytesIO(saved.getvalue())))
                    sampler = pruner.batch_sampler(BATCH)
                    assert list(sampler) == batches[k:], "the restored epoch goes on after the batches trained"
                idx = torch.tensor(batch)
                pruner.loss(losses_for(idx, e), idx)
        return plans

    whole, resumed = run(), run(stop_at=(1, 5))
    assert all(torch.equal(a, c) and torch.equal(b, d) for (a, b), (c, d) in zip(whole, resumed))


@pytest.mark.parametrize("dtype", [torch.bfloat16, torch.float16])
def test_half_precision_losses_are_accepted(dtype):
    pruner = Pruner("infobatch", 64, 3, seed=0)
    pruner.set_epoch(0)
    idx = pruner.plan.indices[:16]
    raw = torch.linspace(0.1, 2.0, 16).to(dtype).requires_grad_()
    loss = pruner.loss(raw, idx)
    assert loss.dtype == torch.float32
    assert torch.equal(loss, (pruner.weights_for(idx) * raw.float()).mean())
    loss.backward()
    assert raw.grad is not None and raw.grad.dtype == dtype
    assert pruner.strategy.score.dtype == torch.float32
    assert torch.equal(pruner.strategy.score[idx], raw.detach().float()), "observed as float32"


def test_a_pruner_from_the_runners_prune_config_is_the_named_one(compose_cfg):
    prune = compose_cfg(["prune=infobatch", "prune.ratio=0.3"]).prune
    a, b = Pruner(prune, 300, 5, seed=3), Pruner("infobatch", 300, 5, seed=3, ratio=0.3)
    for e in range(2):
        a.set_epoch(e), b.set_epoch(e)
        assert torch.equal(a.plan.indices, b.plan.indices)
        idx = a.plan.indices
        a.observe(indices=idx, losses=losses_for(idx, e)), b.observe(indices=idx, losses=losses_for(idx, e))
    assert len(a.plan) < 300


def test_indexed_dataset_appends_the_index_to_any_sample():
    assert IndexedDataset([(1, 2)])[0] == (1, 2, 0)
    assert IndexedDataset([{"x": 1}])[0] == {"x": 1, "index": 0}
    assert IndexedDataset(["a", "b"])[1] == ("b", 1) and len(IndexedDataset(["a", "b"])) == 2
    Pair = collections.namedtuple("Pair", "x y")
    sample, index = IndexedDataset([Pair(1, 2)])[0]
    assert type(sample) is Pair and sample.x == 1 and index == 0, "a namedtuple keeps its type and fields"
    assert IndexedDataset([{"index": 5}], key="i")[0] == {"index": 5, "i": 0}
    with pytest.raises(KeyError, match="already has a 'index' entry"):
        IndexedDataset([{"index": 5}])[0]  # model(**batch) would get the wrong index, silently


def test_loss_refuses_a_reduced_loss():
    pruner = Pruner("full", 10, 1)
    with pytest.raises(ValueError, match="reduction='none'"):
        pruner.loss(torch.tensor(1.0), torch.arange(4))


def test_the_core_package_does_not_need_lightning():
    code = ("import sys, infobatch_runner.library\n"
            "assert not any(m.split('.')[0] in ('lightning', 'pytorch_lightning') for m in sys.modules)\n"
            "sys.modules.update({'lightning': None, 'lightning.pytorch': None, 'pytorch_lightning': None})\n"
            "try:\n    import infobatch_runner.lightning\n"
            "except ImportError as err:\n    assert \"pip install 'infobatch-runner[lightning]'\" in str(err), err\n"
            "else:\n    raise SystemExit('imported without lightning')")
    subprocess.run([sys.executable, "-c", code], check=True, cwd=ROOT)


def test_a_loop_that_never_calls_set_epoch_still_trains_each_epochs_plan():
    """Forgetting set_epoch used to train epoch 0's plan (all the data) every epoch, silently: each
    full pass over the sampler now moves to the next epoch, as explicit set_epoch calls would."""
    def run(explicit):
        pruner = Pruner("infobatch", N, EPOCHS, seed=1, delta=0.75)
        sampler, walked = pruner.batch_sampler(BATCH), []
        for e in range(EPOCHS):
            if explicit:
                sampler.set_epoch(e)
            assert len(sampler) == len(batch_starts(len(pruner.current()), BATCH))
            batches = list(sampler)
            walked.append(sorted(i for b in batches for i in b))
            for batch in batches:
                idx = torch.tensor(batch)
                pruner.loss(losses_for(idx, e), idx)
        return pruner, walked

    (forgot, walked), (_, told) = run(explicit=False), run(explicit=True)
    assert walked == told and len(walked[1]) < N, "the same plans, and they prune"
    with pytest.raises(RuntimeError, match="more epochs than the 4 this Pruner plans"):
        list(forgot.batch_sampler(BATCH))


def test_a_state_of_other_parameters_is_refused():
    saved = Pruner("infobatch", N, EPOCHS, seed=1, ratio=0.5).state_dict()
    with pytest.raises(ValueError, match=r"ratio=0.5 \(this Pruner: 0.3\)"):
        Pruner("infobatch", N, EPOCHS, seed=1, ratio=0.3).load_state_dict(saved)
    with pytest.raises(ValueError, match=r"epochs=4 \(this Pruner: 6\)"):
        Pruner("infobatch", N, 6, seed=1, ratio=0.5).load_state_dict(saved)
    Pruner("infobatch", N, EPOCHS, seed=7, ratio=0.5).load_state_dict(saved)  # the seed lives in the state


def unplanned(pruner) -> torch.Tensor:
    """Two samples epoch 1 prunes away (a DataLoader of its own would still deliver them)."""
    planned = torch.zeros(N, dtype=torch.bool)
    planned[pruner.plan.indices] = True
    return torch.nonzero(~planned).flatten()[:2]


@pytest.mark.parametrize("call,error,match", [
    (lambda p: p.set_epoch(EPOCHS), ValueError, r"epoch must be an integer in \[0, 4\)"),
    (lambda p: p.set_epoch(-1), ValueError, r"epoch must be an integer in \[0, 4\)"),
    (lambda p: p.loss(torch.ones(2), torch.tensor([0.0, 1.7])), TypeError, "indices must be integers"),
    (lambda p: p.loss(torch.ones(2), torch.tensor([0, N])), IndexError, rf"indices must be in \[0, {N}\)"),
    (lambda p: p.observe(indices=torch.tensor([0, 1]), losses=torch.ones(3)), ValueError, "one loss per sample"),
    (lambda p: p.observe(torch.tensor([0, 1]), torch.ones(2)), TypeError, "positional"),
    (lambda p: p.loss(torch.ones(2), unplanned(p)), ValueError, r"not in epoch 1's plan, where they would weigh 0"),
    (lambda p: p.loss([1.0, 2.0], torch.tensor([0, 1])), TypeError, "losses must be a tensor"),
    # a state that does not fit is refused whole: nothing of it installed (it used to install the
    # generator, the scores and the epoch, then fail with a bare KeyError)
    (lambda p: p.load_state_dict("checkpoint.pt"), TypeError, "not a path"),
    (lambda p: p.load_state_dict([1, 2]), TypeError, "takes the dict that state_dict"),
    (lambda p: p.load_state_dict(edited(p, drop="epoch")), ValueError, "this state lacks 'epoch'"),
    (lambda p: p.load_state_dict(edited(p, drop="plan")), ValueError, "this state lacks 'plan'"),
    (lambda p: p.load_state_dict(edited(p, epoch=99)), ValueError, r"epoch 99 is not one of this Pruner's epochs"),
    (lambda p: p.load_state_dict(edited(p, strategy="gen only")), ValueError, "strategy part is not a state of infobatch"),
    (lambda p: p.load_state_dict(edited(p, strategy="short score")), ValueError, "strategy part is not a state"),
    (lambda p: p.load_state_dict(edited(p, plan="out of range")), ValueError, rf"indices outside \[0, {N}\)"),
])
def test_bad_library_input_is_refused_before_any_state_changes(call, error, match):
    pruner = Pruner("infobatch", N, EPOCHS, seed=1, delta=0.75)
    pruner.set_epoch(0)
    pruner.loss(losses_for(pruner.plan.indices, 0), pruner.plan.indices)
    pruner.set_epoch(1)  # a pruned epoch: some samples are outside its plan
    before = io.BytesIO()
    torch.save(pruner.state_dict(), before)
    with pytest.raises(error, match=match):
        call(pruner)
    after = io.BytesIO()
    torch.save(pruner.state_dict(), after)
    assert before.getvalue() == after.getvalue(), "nothing changed"


def edited(pruner, drop=None, epoch=None, strategy=None, plan=None) -> dict:
    """A fresh Pruner's state (another seed, another epoch: everything differs from `pruner`'s), spoiled
    in one place."""
    other = Pruner("infobatch", N, EPOCHS, seed=2, delta=0.75)
    other.set_epoch(0)
    other.loss(losses_for(other.plan.indices, 0) * 3, other.plan.indices)
    other.set_epoch(2)
    state = other.state_dict()
    if drop:
        del state[drop]
    if epoch is not None:
        state["epoch"] = epoch
    if strategy == "gen only":
        state["strategy"] = {"gen": state["strategy"]["gen"]}
    if strategy == "short score":  # the generator and epoch fit, the scores are of another N
        state["strategy"]["seen"] = state["strategy"]["seen"][:5]
    if plan == "out of range":
        state["plan"]["indices"] = state["plan"]["indices"].clone().index_fill_(0, torch.tensor([0]), N)
    return state


@pytest.mark.parametrize("kwargs,error,match", [
    (dict(replacement="false"), TypeError, r"replacement must be True or False \(got 'false'\)"),
    (dict(rescale="no"), TypeError, r"rescale must be True or False"),
    (dict(seed="abc"), TypeError, r"seed must be an integer \(got 'abc'\)"),
    (dict(seed=None), TypeError, r"seed must be an integer \(got None\)"),
    (dict(seed=1.5), TypeError, r"seed must be an integer \(got 1.5\)"),
    (dict(seed=True), TypeError, r"seed must be an integer \(got True\)"),
    (dict(num_replicas="2", rank=0), TypeError, r"num_replicas must be an integer"),
    (dict(num_replicas=2.5, rank=0), TypeError, r"num_replicas must be an integer"),
])
def test_bad_constructor_arguments_are_refused_in_pythons_words(kwargs, error, match):
    with pytest.raises(error, match=match):
        Pruner("random_dynamic", 10, 2, **kwargs)


def test_numpy_and_torch_scalars_are_the_numbers_they_are():
    import numpy as np

    for scalars in (dict(num_samples=np.int64(100), ratio=np.float32(0.5), seed=np.int32(3), replacement=np.bool_(False)),
                    dict(num_samples=torch.tensor(100), ratio=torch.tensor(0.5), seed=torch.tensor(3),
                         replacement=torch.tensor(False))):
        p = Pruner("random_dynamic", scalars.pop("num_samples"), 4, **scalars)
        plain = Pruner("random_dynamic", 100, 4, seed=3, ratio=0.5, replacement=False)
        for e in range(4):
            plain.set_epoch(e)
            p.set_epoch(e)
            assert torch.equal(p.plan.indices, plain.plan.indices)
        p.load_state_dict(plain.state_dict())  # the same parameters, however spelled


def test_a_state_saved_without_parameters_given_is_one_of_the_defaults():
    saved = Pruner("infobatch", N, EPOCHS, seed=1).state_dict()
    Pruner("infobatch", N, EPOCHS, seed=1, ratio=0.5, delta=0.875).load_state_dict(saved)
    with pytest.raises(ValueError, match=r"ratio=0.5 \(this Pruner: 0.3\)"):
        Pruner("infobatch", N, EPOCHS, seed=1, ratio=0.3).load_state_dict(saved)


def test_scores_of_another_length_are_refused():
    pruner = Pruner("el2n", N, EPOCHS)
    with pytest.raises(ValueError, match=rf"one score per sample: {N} \(got shape \(5,\)\)"):
        pruner.strategy.set_scores(torch.ones(5))


def test_an_iterable_dataset_cannot_be_indexed():
    from torch.utils.data import IterableDataset

    class Stream(IterableDataset):
        def __iter__(self):
            yield 1

    with pytest.raises(TypeError, match="needs a map-style dataset"):
        IndexedDataset(Stream())


def mistakes_rank_main(rank, store, out):
    early = Pruner("infobatch", N, EPOCHS, seed=0)  # built before init_process_group: one process's plans
    dist.init_process_group("gloo", init_method=f"file://{store}", rank=rank, world_size=2)
    said = {}
    try:
        early.set_epoch(0)
    except RuntimeError as exc:
        said["early"] = str(exc)
    seeded = Pruner("random_dynamic", N, EPOCHS, seed=rank, ratio=0.5)  # each rank its own seed
    try:
        seeded.set_epoch(0)
    except RuntimeError as exc:
        said["seeds"] = str(exc)
    agreeing = Pruner("random_dynamic", N, EPOCHS, seed=3, ratio=0.5)
    agreeing.set_epoch(0)  # the same seed: no error
    (out / f"said{rank}.json").write_text(json.dumps(said))
    dist.destroy_process_group()


def test_distributed_setup_mistakes_are_one_clear_error_on_every_rank(tmp_path):
    mp.spawn(mistakes_rank_main, args=(str(tmp_path / "store"), tmp_path), nprocs=2, join=True)
    for rank in (0, 1):
        said = json.loads((tmp_path / f"said{rank}.json").read_text())
        assert "built before torch.distributed was initialised" in said["early"]
        assert "the ranks planned epoch 0 differently" in said["seeds"] and "same seed" in said["seeds"]


def test_a_mid_epoch_kill_and_resume_through_the_library_ends_with_the_same_weights():
    """The library page's loop, stopped in the middle of an epoch and continued from a saved state in a
    fresh process's objects: the sampler goes on after the batches already trained, and the final
    weights equal the uninterrupted run's exactly."""
    gen = torch.Generator().manual_seed(0)
    data = TensorDataset(torch.randn(N, 8, generator=gen), torch.randint(0, 3, (N,), generator=gen))

    def train(stop=None, state=None):
        torch.manual_seed(0)
        model = torch.nn.Linear(8, 3)
        opt = torch.optim.SGD(model.parameters(), lr=0.1, momentum=0.9)
        pruner = Pruner("infobatch", N, EPOCHS, seed=0, delta=0.75)
        start = 0
        if state is not None:
            state = torch.load(io.BytesIO(state), weights_only=False)
            model.load_state_dict(state["model"])
            opt.load_state_dict(state["opt"])
            pruner.load_state_dict(state["pruner"])
            start = state["epoch"]
        loader = DataLoader(IndexedDataset(data), batch_sampler=pruner.batch_sampler(BATCH))
        for epoch in range(start, EPOCHS):
            loader.batch_sampler.set_epoch(epoch)  # the resumed epoch is planned already: it goes on
            for k, (x, y, idx) in enumerate(loader):
                if (epoch, k) == stop:
                    saved = io.BytesIO()
                    torch.save({"model": model.state_dict(), "opt": opt.state_dict(),
                                "pruner": pruner.state_dict(), "epoch": epoch}, saved)
                    return saved.getvalue()
                loss = pruner.loss(F.cross_entropy(model(x), y, reduction="none"), idx)
                opt.zero_grad()
                loss.backward()
                opt.step()
        return model.state_dict()

    whole = train()
    resumed = train(state=train(stop=(1, 3)))
    assert all(torch.equal(whole[k], resumed[k]) for k in whole)


def test_a_non_finite_loss_is_left_out_and_its_samples_named_at_the_next_epoch():
    pruner = Pruner("infobatch", N, EPOCHS, seed=1, ratio=0.5)
    pruner.set_epoch(0)
    idx = pruner.plan.indices
    losses = losses_for(idx, 0)
    losses[:3] = torch.tensor([math.nan, math.inf, -math.inf])
    pruner.loss(losses.requires_grad_(), idx)
    assert torch.isfinite(pruner.strategy.score).all() and pruner.strategy.seen.sum() == N - 3
    with pytest.warns(UserWarning, match=rf"3 non-finite losses \(NaN or inf\) in epoch 0, of samples "
                                         rf"{', '.join(map(str, sorted(idx[:3].tolist())))}: left out of the scores"):
        pruner.set_epoch(1)
    assert len(pruner.plan) < N, "pruning goes on"


@pytest.mark.parametrize("kwargs,error,match", [
    (dict(ratio=1.5), ValueError, r"^ratio must be in \[0, 1\) \(got 1.5\)"),
    (dict(ratio=0.5, ratoi=0.3), TypeError, r"^strategy 'infobatch' got an unexpected keyword argument 'ratoi'"),
    (dict(target_saving=0.99), ValueError, r"^target_saving=0.99 cannot be reached"),
])
def test_strategy_errors_are_pythons_types_in_pythons_words(kwargs, error, match):
    with pytest.raises(error, match=match) as caught:
        Pruner("infobatch", N, EPOCHS, **kwargs)
    assert not re.search(r"\bprune[.=]", str(caught.value)), "no Hydra keys in a library error"
    with pytest.raises(ValueError, match=r"^strategy 'infobtach' is unknown; choose one of el2n, "):
        Pruner("infobtach", N, EPOCHS)


def test_the_default_device_is_the_accelerators_else_the_cpu():
    expected = torch.device("cuda", torch.cuda.current_device()) if torch.cuda.is_available() else torch.device("cpu")
    assert Pruner("infobatch", N, EPOCHS).device == expected


def test_on_a_gpu_machine_the_default_device_is_the_current_gpu(monkeypatch):
    from infobatch_runner.integrations import pruner_args as module

    monkeypatch.setattr(torch.accelerator, "is_available", lambda: True)
    monkeypatch.setattr(torch.accelerator, "current_accelerator", lambda: torch.device("cuda"))
    monkeypatch.setattr(torch.accelerator, "current_device_index", lambda: 1)
    assert module.default_device() == torch.device("cuda", 1), "the device torch.cuda.set_device chose (torchrun)"
    assert module.same_device(torch.device("cuda"), torch.device("cuda:1"))
    assert not module.same_device(torch.device("cuda:0"), torch.device("cuda:1"))
    assert module.same_device(torch.device("cpu"), torch.device("cpu:0"))
    assert not module.same_device(torch.device("cpu"), torch.device("cuda:1"))


def test_the_library_imports_torch_and_nothing_heavy_besides():
    """Its import time is timed in bench/startup.py; what it must not pull in is checked here."""
    code = ("import sys, infobatch_runner.library\n"
            "print([m for m in ('torchvision', 'omegaconf', 'hydra', 'matplotlib', 'wandb', 'timm') if m in sys.modules])")
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert result.returncode == 0 and result.stdout.strip() == "[]", result


def test_one_batch_sampler_in_two_dataloaders_is_one_clear_error():
    """A validation loader given the training's batch sampler used to plan the next epoch by walking
    it: the training then skipped epochs, or ran out of them with the wrong cause."""
    data = IndexedDataset(torch.utils.data.TensorDataset(torch.arange(N)))
    pruner = Pruner("random_dynamic", N, EPOCHS, seed=0, ratio=0.5)
    sampler = pruner.batch_sampler(8)
    train = torch.utils.data.DataLoader(data, batch_sampler=sampler)
    for _, idx in train:
        pruner.loss(torch.ones(len(idx)), idx)
    before = io.BytesIO()
    torch.save(pruner.state_dict(), before)
    val = torch.utils.data.DataLoader(data, batch_sampler=sampler)
    with pytest.raises(RuntimeError, match="already feeds another DataLoader"):
        next(iter(val))
    after = io.BytesIO()
    torch.save(pruner.state_dict(), after)
    assert before.getvalue() == after.getvalue(), "the second loader planned nothing"
    del train
    assert len(list(val)) > 0, "a loader that replaces one no longer alive is the sampler's loader"


def test_a_setting_that_prunes_no_epoch_says_so():
    with pytest.warns(UserWarning, match=r"delta 0.1 over 3 epochs leaves no epoch to prune .* rs2 trains all data"):
        Pruner("rs2", N, 3, delta=0.1)
    with pytest.warns(UserWarning, match=r"infobatch trains all data every epoch"):
        Pruner("infobatch", N, 3, delta=0.5)  # annealing from epoch 1: epoch 0 has seen nothing to prune


@pytest.mark.parametrize("name,kwargs,advised,not_advised", [
    ("infobatch", dict(target_saving=0.9, delta=1.0), "train more epochs", "raise delta"),
    ("infobatch", dict(target_saving=0.1, delta=0.3), "raise delta", "raise max_ratio"),  # no pruned epoch
    ("infobatch", dict(target_saving=0.9), "raise max_ratio", "train more epochs"),
    ("random_dynamic", dict(target_saving=0.9999, delta=1.0), "lower the target", "raise delta"),
])
def test_an_unreachable_target_is_given_advice_that_can_help(name, kwargs, advised, not_advised):
    with pytest.raises(ValueError, match="cannot be reached") as caught:
        Pruner(name, N, EPOCHS, **kwargs)
    assert advised in str(caught.value) and not_advised not in str(caught.value), str(caught.value)
