"""The CUDA paths, checked on the CPU where a CPU can show them: one device's RNG state in a
checkpoint, grand variant=full in bounded chunks, cuDNN autotuning for full batches only, the
precision a run reports (tf32), and the fused optimizers."""

import random
from types import SimpleNamespace

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from hydra import compose, initialize_config_module
from omegaconf import OmegaConf
from torch import nn

from conftest import TINY
from test_strategies import TinyNet, in_order_context
from infobatch_runner.config.validate import validate
from infobatch_runner.engine import checkpoint
from infobatch_runner.engine import optim
from infobatch_runner.engine import scoring
from infobatch_runner.engine.loop import Trainable, setting_of, train_epoch
from infobatch_runner.engine.optim import build_optimizer, build_schedule, implementation_for
from infobatch_runner.engine.runtime import allow_tf32, autocast, resolve_precision
from infobatch_runner.engine.train import setup
from infobatch_runner.pruning.full import Full

CUDA = torch.device("cuda")


def compose_cfg(*overrides):
    with initialize_config_module(version_base="1.3", config_module="infobatch_runner.conf"):
        return compose(config_name="config", overrides=[*TINY, *overrides])


# --- 1. checkpoints hold the training device's CUDA RNG state only ------------------------------


class FakeCuda:
    """torch.cuda with one visible device: records which states are read and set."""

    def __init__(self, monkeypatch, visible=1):
        self.visible, self.set_calls, self.get_calls = visible, [], []
        monkeypatch.setattr(torch.cuda, "device_count", lambda: visible)
        monkeypatch.setattr(torch.cuda, "current_device", lambda: 0)
        monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
        monkeypatch.setattr(torch.cuda, "set_rng_state", self.set_rng_state)
        monkeypatch.setattr(torch.cuda, "get_rng_state", self.get_rng_state)
        monkeypatch.setattr(torch.cuda, "get_rng_state_all", self.refuse)
        monkeypatch.setattr(torch.cuda, "set_rng_state_all", self.refuse)

    def set_rng_state(self, state, device="cuda"):
        index = torch.device(device).index or 0
        if index >= self.visible:
            raise RuntimeError(f"invalid device ordinal {index}")
        self.set_calls.append((state, index))

    def get_rng_state(self, device="cuda"):
        self.get_calls.append(torch.device(device))
        return torch.full((16,), 7, dtype=torch.uint8)

    @staticmethod
    def refuse(*args, **kwargs):
        raise AssertionError("one state per visible GPU: the bug this replaces")


def old_checkpoint_rng(gpus=4) -> dict:
    """The rng entry of a checkpoint of an earlier version, saved where `gpus` GPUs were visible."""
    return {"torch": torch.get_rng_state(), "cuda": [torch.full((16,), i, dtype=torch.uint8) for i in range(gpus)],
            "numpy": np.random.get_state(), "python": random.getstate()}


def test_an_old_checkpoint_of_four_gpus_restores_on_one_setting_one_state(monkeypatch):
    fake = FakeCuda(monkeypatch, visible=1)
    saved = {"epoch": 3, "rng": old_checkpoint_rng(4)}
    checkpoint.set_rng_state(saved["rng"], CUDA)
    assert len(fake.set_calls) == 1
    state, index = fake.set_calls[0]
    assert index == 0 and torch.equal(state, saved["rng"]["cuda"][0])


def test_an_old_checkpoint_gives_each_device_its_own_entry_or_the_first(monkeypatch):
    fake = FakeCuda(monkeypatch, visible=8)
    checkpoint.set_rng_state(old_checkpoint_rng(4), torch.device("cuda", 2))
    checkpoint.set_rng_state(old_checkpoint_rng(4), torch.device("cuda", 6))  # saved where fewer were visible
    assert [(int(s[0]), i) for s, i in fake.set_calls] == [(2, 2), (0, 6)]


def test_a_checkpoint_saves_and_restores_the_training_device_state_only(monkeypatch):
    fake = FakeCuda(monkeypatch, visible=1)
    rng = checkpoint.rng_state(CUDA)
    assert fake.get_calls == [CUDA] and isinstance(rng["cuda"], torch.Tensor)
    checkpoint.set_rng_state(rng, CUDA)
    assert len(fake.set_calls) == 1 and torch.equal(fake.set_calls[0][0], rng["cuda"])


def test_a_cpu_run_saves_no_cuda_state_and_restores_none(monkeypatch):
    fake = FakeCuda(monkeypatch, visible=1)
    rng = checkpoint.rng_state(torch.device("cpu"))
    assert rng["cuda"] is None and not fake.get_calls
    checkpoint.set_rng_state(rng, torch.device("cpu"))
    checkpoint.set_rng_state(old_checkpoint_rng(4), torch.device("cpu"))
    checkpoint.set_rng_state({**old_checkpoint_rng(0)}, CUDA)  # an old CPU-only checkpoint: an empty list
    assert not fake.set_calls


# --- 2. grand variant=full: squared norms reduced inside vmap, in bounded chunks ----------------


def autograd_norms(model, x, y):
    norms = []
    for i in range(len(y)):
        model.zero_grad()
        F.cross_entropy(model(x[i : i + 1]), y[i : i + 1]).backward()
        norms.append(torch.cat([p.grad.flatten() for p in model.parameters()]).norm())
    return torch.stack(norms)


def counting_vmap(monkeypatch):
    """torch.func.vmap, recording the chunk_size it is given and how often the function runs."""
    import torch.func

    real, seen = torch.func.vmap, {"chunk_size": [], "calls": 0, "out_shapes": []}

    def vmap(func, *args, chunk_size=None, **kwargs):
        seen["chunk_size"].append(chunk_size)

        def counted(*a):
            seen["calls"] += 1
            return func(*a)

        batched = real(counted, *args, chunk_size=chunk_size, **kwargs)

        def call(*a):
            out = batched(*a)
            seen["out_shapes"].append(tuple(out.shape))
            return out

        return call

    monkeypatch.setattr(torch.func, "vmap", vmap)
    return seen


def test_grand_full_in_chunks_matches_autograd_and_uses_the_chunk(monkeypatch):
    torch.manual_seed(1)
    model, x, y = TinyNet(), torch.randn(12, 5), torch.randint(0, 3, (12,))
    params = sum(p.numel() for p in model.parameters())
    monkeypatch.setattr(scoring, "GRAD_CHUNK_BYTES", 4 * params * 2)  # room for two samples' gradients
    seen = counting_vmap(monkeypatch)
    scores = scoring.grand_full_scores(in_order_context(x, y, batch=6), model)
    assert torch.allclose(scores, autograd_norms(model, x, y), rtol=1e-4)
    assert seen["chunk_size"] == [2]
    assert seen["calls"] == 6, "two batches of 6 samples, 2 at a time"
    assert seen["out_shapes"] == [(6,), (6,)], "one number per sample comes out, never a gradient"


def test_grand_full_unchunked_budget_agrees_with_a_chunk_of_one(monkeypatch):
    torch.manual_seed(2)
    model, x, y = TinyNet(), torch.randn(7, 5), torch.randint(0, 3, (7,))
    whole = scoring.grand_full_scores(in_order_context(x, y), model)
    monkeypatch.setattr(scoring, "GRAD_CHUNK_BYTES", 1)
    seen = counting_vmap(monkeypatch)
    one_by_one = scoring.grand_full_scores(in_order_context(x, y), model)
    assert seen["chunk_size"] == [1] and seen["calls"] == 7
    assert torch.allclose(whole, one_by_one, rtol=1e-5)


def test_grad_chunk_keeps_a_chunk_of_gradients_under_a_gib():
    for params in (10_000, 11_181_642, 25_557_032, 600_000_000):  # small, ResNet-18, ResNet-50, huge
        chunk = scoring.grad_chunk(params)
        assert chunk >= 1
        assert chunk == 1 or chunk * params * 4 <= 1 << 30
        assert (chunk + 1) * params * 4 > 1 << 30
    assert scoring.grad_chunk(11_181_642) == 24


# --- 3. cuDNN autotunes full batches only -------------------------------------------------------


@pytest.mark.parametrize("benchmark", [True, False])
@pytest.mark.parametrize("n,sizes", [(200, [64, 64, 36, 36]), (193, [64, 64, 33, 32]), (192, [64, 64, 64])])
def test_cudnn_autotuning_is_on_for_full_batches_only(benchmark, n, sizes):
    cfg = compose_cfg("prune=full", f"dataset.num_train={n}", f"trainer.cudnn_benchmark={str(benchmark).lower()}")
    ctx = setup(cfg)
    net = Trainable(ctx, seed=0)
    seen, backward = [], []

    def forward_hook(module, inputs, out):
        seen.append((inputs[0].shape[0], torch.backends.cudnn.benchmark))
        out.register_hook(lambda grad: backward.append(torch.backends.cudnn.benchmark))  # runs in the backward

    net.module.register_forward_hook(forward_hook)
    before = torch.backends.cudnn.benchmark
    plan = Full(n, 1, 0, ctx.device).plan(0)
    train_epoch(ctx, net, build_schedule(cfg.scheduler, 1), 0, plan, "test")
    assert [s for s, _ in seen] == sizes
    assert [b for _, b in seen] == [benchmark and s == 64 for s in sizes]
    assert backward == [b for _, b in seen], "the backward pass runs under its batch's flag too"
    assert torch.backends.cudnn.benchmark == before, "the flag is put back after the epoch"


def test_cudnn_flag_is_put_back_when_the_epoch_stops_early():
    from infobatch_runner.engine.loop import autotune_full_batches

    before = torch.backends.cudnn.benchmark
    batches = autotune_full_batches(iter([SimpleNamespace(idx=torch.zeros(4)), SimpleNamespace(idx=torch.zeros(3))]),
                                    4, True)
    next(batches)
    assert torch.backends.cudnn.benchmark is True
    batches.close()
    assert torch.backends.cudnn.benchmark == before


# --- 4. the precision a run reports, tf32 included ----------------------------------------------


@pytest.mark.parametrize("spec,device,tf32,expected", [
    ("fp32", CUDA, True, "tf32"),
    ("fp32", CUDA, False, "fp32"),
    ("fp32", torch.device("cuda", 1), True, "tf32"),
    ("fp32", torch.device("cpu"), True, "fp32"),
    ("fp32", torch.device("cpu"), False, "fp32"),
    ("bf16", CUDA, True, "bf16"),
    ("bf16", CUDA, False, "bf16"),
    ("fp16", CUDA, True, "fp16"),
    ("auto", torch.device("cpu"), True, "fp32"),
])
def test_the_precision_string_of_a_run(spec, device, tf32, expected):
    assert resolve_precision(spec, device, tf32) == expected


def test_auto_on_cuda_is_autocast_whatever_tf32_says(monkeypatch):
    monkeypatch.setattr(torch.cuda, "is_bf16_supported", lambda *a, **k: True)
    assert resolve_precision("auto", CUDA, True) == resolve_precision("auto", CUDA, False) == "bf16"
    monkeypatch.setattr(torch.cuda, "is_bf16_supported", lambda *a, **k: False)
    assert resolve_precision("auto", CUDA, True) == "fp16"


def test_tf32_runs_without_autocast():
    assert not isinstance(autocast(CUDA, "tf32"), torch.autocast)
    assert isinstance(autocast(torch.device("cpu"), "bf16"), torch.autocast)


def test_allow_tf32_sets_both_flags_and_false_means_true_fp32():
    before = (torch.backends.cuda.matmul.allow_tf32, torch.backends.cudnn.allow_tf32)
    try:
        allow_tf32(False)
        assert not torch.backends.cuda.matmul.allow_tf32 and not torch.backends.cudnn.allow_tf32
        assert torch.get_float32_matmul_precision() == "highest"
        allow_tf32(True)
        assert torch.backends.cuda.matmul.allow_tf32 and torch.backends.cudnn.allow_tf32
    finally:
        torch.backends.cuda.matmul.allow_tf32, torch.backends.cudnn.allow_tf32 = before


def test_tf32_composes_validates_and_separates_a_run_from_its_would_be_baseline():
    for value in ("true", "false"):
        cfg = compose_cfg(f"trainer.tf32={value}")
        validate(cfg)
        assert cfg.trainer.tf32 is (value == "true")
    ctx = SimpleNamespace(cfg=compose_cfg(), device=torch.device("cpu"), precision="tf32", world_size=1)
    assert setting_of(ctx) != setting_of(SimpleNamespace(**{**vars(ctx), "precision": "fp32"}))
    assert setting_of(ctx)["precision"] == "tf32"


# --- 5. fused SGD and AdamW on CUDA, torch's default elsewhere ----------------------------------


def test_fused_kernels_on_cuda_only():
    assert implementation_for(CUDA) == {"fused": True}
    assert implementation_for(torch.device("cuda", 3)) == {"fused": True}
    assert implementation_for(torch.device("cpu")) == {}


SGD = dict(name="sgd", lr=0.1, momentum=0.9, nesterov=True, weight_decay=5e-4)
ADAMW = dict(name="adamw", lr=1e-2, betas=[0.9, 0.999], eps=1e-8, weight_decay=0.01)
LARS = dict(name="lars", lr=1.0, momentum=0.9, weight_decay=1e-4, trust_coefficient=0.02, eps=1e-9)


@pytest.mark.parametrize("cfg", [SGD, ADAMW], ids=["sgd", "adamw"])
def test_optimizers_on_the_cpu_are_not_fused(cfg):
    opt = build_optimizer(OmegaConf.create(cfg), nn.Linear(4, 2))
    assert not opt.defaults["fused"]


@pytest.mark.parametrize("cfg", [SGD, ADAMW], ids=["sgd", "adamw"])
def test_parameters_on_cuda_get_the_fused_optimizer(monkeypatch, cfg):
    """Where the parameters live decides; here they are said to be on CUDA (torch's fused kernels
    also exist for the CPU, so the optimizer built still steps)."""
    monkeypatch.setattr(optim, "parameter_device", lambda model: CUDA)
    model = nn.Linear(4, 2)
    opt = build_optimizer(OmegaConf.create(cfg), model)
    assert opt.defaults["fused"] is True
    model(torch.randn(3, 4)).sum().backward()
    opt.step()


def test_lars_is_ours_and_untouched_by_the_device(monkeypatch):
    monkeypatch.setattr(optim, "parameter_device", lambda model: CUDA)
    opt = build_optimizer(OmegaConf.create(LARS), nn.Linear(4, 2))
    assert isinstance(opt, optim.LARS) and "fused" not in opt.defaults


def test_the_parameter_device_is_where_the_parameters_are():
    assert optim.parameter_device(nn.Linear(2, 2)) == torch.device("cpu")
    assert optim.parameter_device(nn.ReLU()) == torch.device("cpu")
