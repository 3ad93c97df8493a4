"""Data parallelism on CPU with two gloo ranks: equal shards of one plan, observations merged once
per epoch into identical strategy states, equal to a single process over the same batches."""

import json
import os
import subprocess
import sys
from pathlib import Path

import torch
import torch.distributed as dist
import torch.multiprocessing as mp

from conftest import TINY
from infobatch_runner.distributed import Observations, World, shard
from infobatch_runner.pruning.infobatch import InfoBatch

N, EPOCHS, BATCH = 1001, 4, 32


def losses_for(idx, epoch):
    return ((idx.float() * 0.37 + epoch).sin() + 1.5).float()


def rank_main(rank, store, out):
    dist.init_process_group("gloo", init_method=f"file://{store}", rank=rank, world_size=2)
    world = World(rank, 2, rank)
    s, obs = InfoBatch(N, EPOCHS, 0), Observations()
    for e in range(EPOCHS):
        mine = shard(s.plan(e), world)
        for start in range(0, len(mine), BATCH):
            idx = mine.indices[start : start + BATCH]
            obs.observe(idx, losses_for(idx, e))
        obs.merge(s, world)
    torch.save({"score": s.score, "seen": s.seen, "plan": s.plan(1).indices}, out / f"rank{rank}.pt")
    dist.destroy_process_group()


def test_two_gloo_ranks_merge_into_the_single_process_state(tmp_path):
    mp.spawn(rank_main, args=(str(tmp_path / "store"), tmp_path), nprocs=2, join=True)
    r0, r1 = (torch.load(tmp_path / f"rank{r}.pt") for r in (0, 1))
    assert torch.equal(r0["score"], r1["score"]) and torch.equal(r0["plan"], r1["plan"]), "ranks agree"

    single = InfoBatch(N, EPOCHS, 0)
    for e in range(EPOCHS):
        plan = single.plan(e)
        order = torch.arange(-(-len(plan) // 2) * 2) % len(plan)  # the samples the two ranks trained, padding too
        for start in range(0, len(order), BATCH):
            idx = plan.indices[order[start : start + BATCH]]
            single.observe(idx, losses_for(idx, e))
    assert torch.equal(single.score, r0["score"]) and torch.equal(single.seen, r0["seen"])


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
    result = subprocess.run([torchrun, "--nproc_per_node=2", script, *TINY, f"hydra.run.dir={run_dir}"],
                            cwd=tmp_path, env=env, capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, result.stderr[-3000:]
    summary = json.loads((run_dir / "summary.json").read_text())
    assert summary["epochs"] == 3 and summary["samples_trained"] >= 256
    assert result.stdout.count("final test acc") == 1, "only rank 0 reports"
    assert len(list((run_dir / "checkpoints").glob("*.pt"))) == 2
