"""Data parallelism on CPU with two gloo ranks: equal shards of one plan, observations merged once
per epoch, padding that decides nothing, and the CLI under torchrun. That every strategy's ranks
merge into one process's state is a property of the contract (infobatch_runner.testing, run for
each of ours in test_strategy_contract.py)."""

import json
import os
import subprocess
import sys
from pathlib import Path

import torch
import torch.distributed as dist
import torch.multiprocessing as mp

from conftest import TINY
from infobatch_runner.engine.distributed import Observations, World, shard
from infobatch_runner.pruning.infobatch import InfoBatch

N, EPOCHS = 1001, 4


def losses_for(idx, epoch):
    return ((idx.float() * 0.37 + epoch).sin() + 1.5).float()


def test_shards_are_equal_and_cover_the_plan():
    s = InfoBatch(N, EPOCHS, 0)
    plan = s.plan(0)
    parts = [shard(plan, World(r, 3, r)) for r in range(3)]
    assert len({len(p) for p in parts}) == 1
    covered = torch.cat([p.indices for p in parts])
    assert set(covered.tolist()) == set(plan.indices.tolist()) and covered.dtype == torch.int64


def test_torchrun_two_ranks_write_one_summary(tmp_path):
    run_dir = tmp_path / "run"
    torchrun = str(Path(sys.executable).with_name("torchrun"))
    script = str(Path(sys.executable).with_name("infobatch-run"))
    env = {**os.environ, "WANDB_MODE": "offline", "OMP_NUM_THREADS": "1"}
    # 257 samples on 2 ranks: each epoch's plan is padded by one repeated sample, which trains nothing new
    result = subprocess.run([torchrun, "--nproc_per_node=2", script, *TINY, "prune=full", "dataset.num_train=257",
                             f"hydra.run.dir={run_dir}"], cwd=tmp_path, env=env, capture_output=True, text=True,
                            timeout=300)
    assert result.returncode == 0, result.stderr[-3000:]
    summary = json.loads((run_dir / "summary.json").read_text())
    assert summary["epochs"] == 3 and summary["samples_trained"] == 3 * 257 and summary["saving_samples"] == 0.0
    assert summary["setting"]["trainer"]["world_size"] == 2
    assert summary["setting"]["trainer"]["global_batch_size"] == 2 * summary["batch_size"]
    assert result.stdout.count("final test acc") == 1, "only rank 0 reports"
    assert len(list((run_dir / "checkpoints").glob("*.pt"))) == 2


def test_torchrun_into_a_refused_folder_is_one_sentence_from_rank_0_and_no_traceback(tmp_path):
    run_dir = tmp_path / "run"
    run_dir.mkdir()
    (run_dir / "summary.json").write_text("{}")  # a folder holding a run: a fresh start is refused
    torchrun = str(Path(sys.executable).with_name("torchrun"))
    script = str(Path(sys.executable).with_name("infobatch-run"))
    env = {**os.environ, "WANDB_MODE": "offline", "OMP_NUM_THREADS": "1"}
    result = subprocess.run([torchrun, "--nproc_per_node=2", script, *TINY, f"hydra.run.dir={run_dir}"], cwd=tmp_path,
                            env=env, capture_output=True, text=True, timeout=300)
    out = result.stdout + result.stderr
    # torchrun itself reports a rank's non-zero exit with its own ChildFailedError; no rank may fail
    # inside our code (rank 1 used to die in a gloo collective with the rank 0 that had left).
    assert result.returncode != 0 and "infobatch_runner/" not in out and "gloo" not in out.lower(), out[-3000:]
    assert out.count("infobatch-run: error:") == 1 and "already holds a run" in out, out[-3000:]
    assert sorted(p.name for p in run_dir.iterdir()) == ["summary.json"]


def test_nccl_only_on_gpus_and_each_rank_bound_to_its_gpu_before_it_starts(monkeypatch):
    from infobatch_runner.engine import distributed

    calls = []
    monkeypatch.setenv("WORLD_SIZE", "2")
    monkeypatch.setenv("LOCAL_RANK", "1")
    monkeypatch.setattr(dist, "is_initialized", lambda: False)
    monkeypatch.setattr(dist, "get_rank", lambda: 1)
    monkeypatch.setattr(dist, "get_world_size", lambda: 2)
    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    monkeypatch.setattr(torch.cuda, "set_device", lambda d: calls.append(("set_device", str(d))))
    monkeypatch.setattr(dist, "init_process_group",
                        lambda backend, **kw: calls.append(("init", backend, str(kw.get("device_id")))))
    assert distributed.world_from_env("auto") == World(1, 2, 1)
    assert calls == [("set_device", "cuda:1"), ("init", "nccl", "cuda:1")], "bound before NCCL starts"
    calls.clear()
    distributed.world_from_env("cpu")
    assert calls == [("init", "gloo", "None")], "trainer.device=cpu trains with gloo even where CUDA is visible"


def test_merge_keeps_each_index_once_with_its_first_loss():
    from infobatch_runner.engine.distributed import SINGLE

    s, obs = InfoBatch(10, 4, 0), Observations()
    obs.observe(torch.tensor([3, 4, 5]), torch.tensor([1.0, 2.0, 3.0]))
    obs.observe(torch.tensor([6, 3]), torch.tensor([4.0, 9.0]))  # 3 again: a shard's padding
    received = []
    s.observe = lambda idx, losses: received.append((idx.tolist(), losses.tolist()))
    obs.merge(s, SINGLE)
    assert received == [([3, 4, 5, 6], [1.0, 2.0, 3.0, 4.0])]


def rank_with_padding_main(rank, store, out):
    """Losses that differ by rank: the padded copy of a sample (trained again by another rank)
    must not decide its score, on either rank."""
    dist.init_process_group("gloo", init_method=f"file://{store}", rank=rank, world_size=2)
    world = World(rank, 2, rank)
    s, obs = InfoBatch(N, EPOCHS, 0), Observations()
    plan = s.plan(0)
    mine = shard(plan, world)
    obs.observe(mine.indices, losses_for(mine.indices, 0) + 10 * rank)
    obs.merge(s, world)
    torch.save({"score": s.score, "first": plan.indices[0]}, out / f"rank{rank}.pt")
    dist.destroy_process_group()


def test_two_gloo_ranks_stay_identical_when_padding_repeats_a_sample(tmp_path):
    mp.spawn(rank_with_padding_main, args=(str(tmp_path / "store"), tmp_path), nprocs=2, join=True)
    r0, r1 = (torch.load(tmp_path / f"rank{r}.pt") for r in (0, 1))
    assert torch.equal(r0["score"], r1["score"])
    first = int(r0["first"])  # N is odd: rank 1 trains plan[0] again as padding, with a loss 10 higher
    assert r0["score"][first] == losses_for(torch.tensor([first]), 0)[0]


def agree_main(rank, store, out):
    from infobatch_runner.engine.distributed import any_rank

    dist.init_process_group("gloo", init_method=f"file://{store}", rank=rank, world_size=2)
    world = World(rank, 2, rank)
    votes = [any_rank(rank == 1, world, torch.device("cpu")), any_rank(False, world, torch.device("cpu"))]
    torch.save(votes, out / f"rank{rank}.pt")
    dist.destroy_process_group()


def test_ranks_agree_to_skip_a_batch_when_any_rank_must(tmp_path):
    mp.spawn(agree_main, args=(str(tmp_path / "store"), tmp_path), nprocs=2, join=True)
    assert [torch.load(tmp_path / f"rank{r}.pt") for r in (0, 1)] == [[True, False], [True, False]]


def test_each_rank_draws_its_own_augmentation_and_rank_0_the_run_s(compose_cfg):
    from infobatch_runner.data.build import build_data
    from infobatch_runner.engine.distributed import SINGLE, augment_seed

    cfg = compose_cfg(["dataset=synthetic", "dataset.num_train=64", "dataset.image_size=16",
                       "dataset.augment.crop_padding=2", "dataset.augment.flip=true"])

    def first_batch(world):
        data = build_data(cfg.dataset, 64, 64, 0, torch.device("cpu"), False, 0, "device", augment_seed(0, world))
        return next(iter(data.train.iterate(torch.arange(64)))).x

    single, rank0, rank1 = first_batch(SINGLE), first_batch(World(0, 2, 0)), first_batch(World(1, 2, 1))
    assert torch.equal(single, rank0) and not torch.equal(rank0, rank1)
