"""No host sync in the training step: one bf16 epoch of every dynamic strategy, driven through
loop.train_epoch as train.py drives it, under torch.cuda.set_sync_debug_mode("error"), so that any
.item(), nonzero, blocking copy or synchronize inside the batch loop raises, naming the line.

Only the batch loop is checked: the warm-up, the strategy's plan, evaluation and the reads at the
epoch's end are allowed to sync (once per epoch, by design). Each strategy first trains an
unchecked epoch (its state is observed, InfoBatch prunes from the next one), then the checked
one. trainer.skip_nonfinite stays off (with it on, the step reads the loss by design). On a CPU
the same epochs run without the sync check (there is nothing to sync with), which shows the
driver still fits the loop.

    python -m bench.sync_check [--device cuda|cpu] [--model resnet18] [--batch 512] [--n 8492] [--json PATH]
"""

import argparse
import json
import traceback
from pathlib import Path

import torch
from hydra import compose, initialize_config_module

from infobatch_runner.engine.loop import StopFlag, Trainable, check_finite, train_epoch, warm_up
from infobatch_runner.engine.optim import build_schedule
from infobatch_runner.engine.runtime import SectionClock, synchronize
from infobatch_runner.engine.train import setup
from infobatch_runner.pruning import build_strategy

DYNAMIC = ("full", "infobatch", "seta", "random_dynamic", "rs2", "epsilon_greedy", "ucb")
EPOCHS = 4  # the schedule's and the strategies' horizon; two of them are trained


def config(args, extra=()):
    overrides = [
        "dataset=synthetic", f"dataset.num_train={args.n}", "dataset.num_test=256", f"dataset.image_size={args.image_size}",
        "dataset.channels=3", "dataset.augment.crop_padding=4", "dataset.augment.flip=true", f"model={args.model}",
        f"trainer.batch_size={args.batch}", f"trainer.device={args.device}", "trainer.precision=bf16",
        f"trainer.epochs={EPOCHS}", "trainer.progress=false", "trainer.skip_nonfinite=false", "logger=none",
        # the optional parts of the step too: gradient clipping (unscale + norm) and label smoothing
        "trainer.grad_clip=1.0", "trainer.label_smoothing=0.1", *extra,
    ]
    with initialize_config_module(version_base="1.3", config_module="infobatch_runner.conf"):
        return compose(config_name="config", overrides=overrides)


def where(exc: BaseException) -> str:
    """The innermost line of the package in the traceback: where the sync happened."""
    frames = [f for f in traceback.extract_tb(exc.__traceback__) if "infobatch_runner" in f.filename]
    return f"{frames[-1].filename.rsplit('infobatch_runner/', 1)[-1]}:{frames[-1].lineno} " if frames else ""


def check(ctx, cfg, name: str, args) -> dict:
    cuda = ctx.device.type == "cuda"
    strategy = build_strategy(config(args, [f"prune={name}"]).prune, len(ctx.data.train), EPOCHS, cfg.seed, ctx.device)
    net = Trainable(ctx, cfg.seed, compile=False)
    schedule = build_schedule(cfg.scheduler, EPOCHS)
    check_finite(train_epoch(ctx, net, schedule, 0, strategy.plan(0), "unchecked", strategy=strategy), "epoch 1")
    plan = strategy.plan(1)  # a plan may read the device: once per epoch, outside the step
    steps = ctx.data.train.num_batches(len(plan))
    synchronize(ctx.device)
    if cuda:
        torch.cuda.set_sync_debug_mode("error")
    try:
        result = train_epoch(ctx, net, schedule, 1, plan, "checked", strategy=strategy, clock=SectionClock(ctx.device),
                             stop=StopFlag())
    except RuntimeError as exc:
        if not cuda or "synchroniz" not in str(exc):
            raise
        return {"status": "FAIL", "detail": f"{where(exc)}{str(exc).splitlines()[0][:160]}"}
    finally:
        if cuda:
            torch.cuda.set_sync_debug_mode(0)
    check_finite(result, "epoch 2")
    kept = len(plan) / len(ctx.data.train)
    if not cuda:
        return {"status": "SKIP", "detail": f"no CUDA: {steps} steps (kept {kept:.2f}) ran on {ctx.device.type}, unchecked"}
    return {"status": "PASS", "detail": f"0 host syncs in {steps} steps (kept {kept:.2f})"}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--device", default="cuda")
    parser.add_argument("--model", default="resnet18")
    parser.add_argument("--batch", type=int, default=512)
    parser.add_argument("--n", type=int, default=8_492)  # 16 full batches of 512 and a partial one
    parser.add_argument("--image-size", type=int, default=32)
    parser.add_argument("--strategies", default=",".join(DYNAMIC))
    parser.add_argument("--json", type=Path, help="write {strategy: {status, detail}} here")
    args = parser.parse_args()
    cfg = config(args)
    ctx = setup(cfg)
    warm_up(ctx)
    results = {}
    for name in args.strategies.split(","):
        try:
            results[name] = check(ctx, cfg, name, args)
        except Exception as exc:  # a bug, not a sync: say what and go on with the next strategy
            traceback.print_exc()
            results[name] = {"status": "FAIL", "detail": f"{where(exc)}{type(exc).__name__}: {str(exc)[:160]}"}
        print(f"{name:15s} {results[name]['status']:5s} {results[name]['detail']}", flush=True)
    if args.json:
        args.json.write_text(json.dumps(results, indent=2) + "\n")
    raise SystemExit(1 if any(r["status"] == "FAIL" for r in results.values()) else 0)


if __name__ == "__main__":
    main()
