"""The scoring phase of static strategies: proxy trainings through the same loop, then scores.

Its wall-clock (device-synchronised) and its sample passes are charged to the run. Scores can be
cached in a file keyed by everything that changes them, so a sweep over ratios scores once; a run
that reuses the cache still reports what producing it cost, marked as cached.
"""

import contextlib
import hashlib
import json
import logging
import math
import os
from dataclasses import dataclass
from pathlib import Path

import torch
import torch.nn.functional as F
from torch import nn

from infobatch_runner.engine.loop import (Context, Interrupted, StopFlag, Trainable, check_finite, setting_of,
                                          train_epoch)
from infobatch_runner.engine.optim import build_schedule
from infobatch_runner.engine.runtime import autocast, timed_now
from infobatch_runner.errors import UserError, first_line
from infobatch_runner.pruning.base import strategy_seed
from infobatch_runner.pruning.full import Full
from infobatch_runner.pruning.static import ForgettingRecorder, ScoringSpec

log = logging.getLogger(__name__)
FORWARD_PASS = 1 / 3  # a scoring forward, in training passes (forward + backward ~ 3 forwards)
CACHE_FORMAT = 2  # 2: the setting includes trainer.loader and trainer.compile


@dataclass
class ScoringResult:
    scores: torch.Tensor
    time_s: float
    samples: float
    cached: bool


def classifier_of(model: nn.Module) -> nn.Linear:
    head = model.get_classifier() if hasattr(model, "get_classifier") else getattr(model, "fc", None)
    if not isinstance(head, nn.Linear):
        raise UserError("prune=grand variant=last_layer needs a model whose classifier is one linear layer; "
                        "use prune.variant=full or another model.")
    return head


def _train_order(ctx: Context):
    n = len(ctx.data.train_eval)
    return ctx.data.train_eval.iterate(torch.arange(n, device=ctx.device)), n


@torch.no_grad()
def el2n_scores(ctx: Context, model: nn.Module) -> torch.Tensor:
    """||softmax(f(x)) - onehot(y)||_2 on the un-augmented training set, eval mode."""
    model.eval()
    batches, n = _train_order(ctx)
    scores = torch.empty(n, device=ctx.device)
    for b in batches:
        with autocast(ctx.device, ctx.precision):
            logits = model(b.x)
        error = logits.float().softmax(1) - F.one_hot(b.y, logits.shape[1]).float()
        scores[b.idx] = error.norm(dim=1)
    return scores


@torch.no_grad()
def grand_last_layer_scores(ctx: Context, model: nn.Module) -> torch.Tensor:
    """Closed form of ||d loss / d (W, b)|| for the linear classifier z = W h + b under
    cross-entropy: dL/dz = softmax(z) - onehot(y) = e, so the norm is ||e|| * sqrt(||h||^2 + 1)."""
    model.eval()
    head = classifier_of(model)
    features = {}
    hook = head.register_forward_hook(lambda mod, inputs, out: features.__setitem__("h", inputs[0]))
    batches, n = _train_order(ctx)
    scores = torch.empty(n, device=ctx.device)
    bias = 1.0 if head.bias is not None else 0.0
    try:
        for b in batches:
            with autocast(ctx.device, ctx.precision):
                logits = model(b.x)
            error = logits.float().softmax(1) - F.one_hot(b.y, logits.shape[1]).float()
            h = features["h"].float().flatten(1)
            scores[b.idx] = error.norm(dim=1) * (h.pow(2).sum(1) + bias).sqrt()
    finally:
        hook.remove()
    return scores


GRAD_CHUNK_BYTES = 1 << 30  # per-sample gradients alive at once in grand variant=full (fp32)


def grad_chunk(num_params: int, budget_bytes: int | None = None) -> int:
    """How many samples' full gradients (4 bytes per parameter each) fit in `budget_bytes`
    (GRAD_CHUNK_BYTES): the chunk that grand variant=full differentiates at once (at least 1).
    ResNet-18 (11.2M parameters): 24 samples."""
    budget = GRAD_CHUNK_BYTES if budget_bytes is None else budget_bytes
    return max(1, budget // (4 * max(num_params, 1)))


def grand_full_scores(ctx: Context, model: nn.Module) -> torch.Tensor:
    """||d loss / d theta|| over every parameter, per sample, with torch.func (eval mode, fp32).

    The vmapped function returns each sample's squared gradient norm, reduced inside, and runs
    over `grad_chunk` samples at a time: at most chunk x |params| gradient values exist at once
    (about 1 GiB), never batch x |params| (tens of GiB for a ResNet-18 at eval batch size)."""
    from torch.func import functional_call, grad, vmap

    model.eval()
    params = {k: v.detach() for k, v in model.named_parameters()}
    buffers = {k: v.detach() for k, v in model.named_buffers()}

    def loss_one(p, x, y):
        logits = functional_call(model, (p, buffers), (x.unsqueeze(0),))
        return F.cross_entropy(logits.float(), y.unsqueeze(0))

    def squared_norm_one(p, x, y):
        return sum(g.pow(2).sum() for g in grad(loss_one)(p, x, y).values())

    chunk = grad_chunk(sum(v.numel() for v in params.values()))
    per_sample = vmap(squared_norm_one, in_dims=(None, 0, 0), chunk_size=chunk)
    batches, n = _train_order(ctx)
    scores = torch.empty(n, device=ctx.device)
    for b in batches:
        scores[b.idx] = per_sample(params, b.x, b.y).sqrt()
    return scores


def scoring_samples(spec: ScoringSpec, n: int) -> float:
    """Sample passes of a scoring phase: proxy training, plus the scoring itself."""
    trained = spec.runs * spec.epochs * n
    if spec.kind == "forgetting":
        return float(trained)  # correctness comes from the training forward itself
    per_sample = 1.0 if (spec.kind == "grand" and spec.variant == "full") else FORWARD_PASS
    return trained + spec.runs * n * per_sample


def cache_key(ctx: Context, spec: ScoringSpec) -> dict:
    setting = setting_of(ctx)
    del setting["trainer"]["epochs"]  # the proxies' length is spec.epochs; the main run's does not matter
    return {"format": CACHE_FORMAT, "scoring": spec.as_dict(), "seed": ctx.cfg.seed, "num_train": len(ctx.data.train),
            **setting}


def cache_path(cache_dir: str, key: dict) -> Path:
    digest = hashlib.sha256(json.dumps(key, sort_keys=True).encode()).hexdigest()[:20]
    return Path(cache_dir).expanduser() / f"{key['scoring']['kind']}-{digest}.pt"


def _load_cache(path: Path, key: dict, n: int) -> ScoringResult | None:
    if not path.is_file():
        return None
    try:
        saved = torch.load(path, map_location="cpu", weights_only=True)
        if saved["key"] != json.loads(json.dumps(key)) or saved["scores"].shape != (n,):
            return None
        scores, time_s, samples = saved["scores"], float(saved["time_s"]), float(saved["samples"])
    except Exception as exc:  # a damaged cache costs a re-scoring, never the run
        log.warning("score cache %s is unreadable (%s); scoring again.", path, type(exc).__name__)
        return None
    # What the run charges itself (time, samples) and prunes by (scores) must be real numbers.
    flaw = ("non-finite scores" if not bool(torch.isfinite(scores).all()) else
            f"a scoring time of {time_s:g} s" if not (math.isfinite(time_s) and time_s >= 0) else
            f"{samples:g} scored samples" if not (math.isfinite(samples) and samples >= 0) else None)
    if flaw is not None:
        log.warning("score cache %s holds %s; scoring again.", path, flaw)
        return None
    return ScoringResult(scores, time_s, samples, cached=True)


def _save_cache(path: Path, key: dict, result: ScoringResult) -> None:
    tmp = path.with_name(path.name + ".tmp")
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        torch.save({"key": key, "scores": result.scores.cpu(), "time_s": result.time_s, "samples": result.samples}, tmp)
        os.replace(tmp, path)
    except (OSError, RuntimeError) as exc:  # torch's zip writer reports a full disk as a RuntimeError
        with contextlib.suppress(OSError):
            tmp.unlink(missing_ok=True)
        log.warning("could not write the score cache %s (%s); the run goes on.", path, first_line(exc))


def scoring_stopped(signal_name: str, where: str, how_to_continue: str) -> Interrupted:
    return Interrupted(f"stopped by {signal_name} during {where}; no checkpoint exists yet, so nothing was kept: "
                       f"start it afresh in the same folder with {how_to_continue} (it scores again)", signal_name)


def run_scoring(ctx: Context, spec: ScoringSpec, cache: bool, cache_dir: str, stop: StopFlag | None = None,
                how_to_continue: str = "resume=auto") -> ScoringResult:
    """Score (or read the cache). SIGTERM/SIGINT (`stop`) end it at the next proxy batch: scores are
    not checkpointed, so the run keeps nothing and the next start (`how_to_continue`) scores again."""
    n = len(ctx.data.train)
    key = cache_key(ctx, spec)
    path = cache_path(cache_dir, key)
    if cache:
        hit = _load_cache(path, key, n)
        if hit is not None:
            log.info("%s scores reused from %s (produced in %.1f s, charged to this run)", spec.kind, path, hit.time_s)
            hit.scores = hit.scores.to(ctx.device)
            return hit

    start = timed_now(ctx.device)
    # Proxies draw augmentations from the training loader's generator; put it back afterwards, so
    # that the main training is the same whether its scores were computed or read from the cache.
    loader_gen = getattr(ctx.data.train, "gen", None)
    loader_state = loader_gen.get_state() if loader_gen is not None else None
    total = torch.zeros(n, device=ctx.device)
    for run in range(spec.runs):
        seed = strategy_seed(ctx.cfg.seed, f"{spec.kind}-proxy-{run}")
        net = Trainable(ctx, seed, compile=False)  # proxies run eagerly: no compile time in the scoring
        schedule = build_schedule(ctx.cfg.scheduler, max(spec.epochs, 1))
        proxy_plans = Full(n, spec.epochs, seed, ctx.device)
        recorder = ForgettingRecorder(n, ctx.device) if spec.kind == "forgetting" else None
        for epoch in range(spec.epochs):
            desc = f"scoring {spec.kind} {run + 1}/{spec.runs}, epoch {epoch + 1}/{spec.epochs}"
            where = f"the {spec.kind} scoring phase (proxy {run + 1}/{spec.runs}, epoch {epoch + 1}/{spec.epochs})"
            try:
                result = train_epoch(ctx, net, schedule, epoch, proxy_plans.plan(epoch), desc, recorder=recorder,
                                     stop=stop)
            except Interrupted as exc:
                raise scoring_stopped(exc.signal, where, how_to_continue) from None
            if stop is not None and stop.signal:
                raise scoring_stopped(stop.signal, where, how_to_continue)
            check_finite(result, f"scoring proxy {run + 1}, epoch {epoch + 1}")
        if spec.kind == "forgetting":
            total += recorder.scores()
        elif spec.kind == "el2n":
            total += el2n_scores(ctx, net.module)
        elif spec.variant == "last_layer":
            total += grand_last_layer_scores(ctx, net.module)
        else:
            total += grand_full_scores(ctx, net.module)
        log.info("scoring %s: proxy %d/%d done", spec.kind, run + 1, spec.runs)
    if loader_gen is not None:
        loader_gen.set_state(loader_state)
    result = ScoringResult(total / spec.runs, timed_now(ctx.device) - start, scoring_samples(spec, n), cached=False)
    if cache:
        _save_cache(path, key, result)
    return result
