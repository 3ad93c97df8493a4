"""Loop efficiency: training images per second of the real loop (plan-driven device loader with
crop + flip on the device, InfoBatch's plan and observe, AMP where it applies, schedule) divided
by that of a bare step loop over batches already on the device, same model and batch size,
measured in the same run.

    python -m bench.loop_efficiency [--device auto|cpu|cuda] [--model M] [--batch B] [--n N] [--repeats R] [--smoke]
    (defaults: resnet18 at batch 512 on 50,000 CIFAR-size images on CUDA; cnn_small at batch 256 on 20,480 on CPU;
    --smoke: cnn_small at batch 128 on 1,024)
"""

import argparse

import torch
import torch.nn.functional as F
from hydra import compose, initialize_config_module

from bench.common import add_common_args, median, pick_device, write
from infobatch_runner.engine.loop import Trainable, train_epoch, warm_up
from infobatch_runner.engine.optim import build_schedule
from infobatch_runner.engine.runtime import autocast, timed_now
from infobatch_runner.engine.train import setup
from infobatch_runner.pruning import build_strategy


def config(device: torch.device, model: str, batch: int, n: int, precision: str):
    overrides = [
        "dataset=synthetic", f"dataset.num_train={n}", "dataset.num_test=512", "dataset.image_size=32",
        "dataset.channels=3", "dataset.augment.crop_padding=4", "dataset.augment.flip=true", f"model={model}",
        f"trainer.batch_size={batch}", f"trainer.device={device}", f"trainer.precision={precision}",
        "trainer.epochs=10", "trainer.progress=false", "prune=infobatch", "logger=none",
    ]
    with initialize_config_module(version_base="1.3", config_module="infobatch_runner.conf"):
        return compose(config_name="config", overrides=overrides)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    add_common_args(parser, "interleaved pairs of timed epochs (default 3)")
    parser.add_argument("--model")
    parser.add_argument("--batch", type=int)
    parser.add_argument("--n", type=int)
    parser.add_argument("--precision", default="auto")
    args = parser.parse_args()
    args.repeats = args.repeats or 3
    device = pick_device(args.device)
    gpu = device.type == "cuda" and not args.smoke
    model = args.model or ("resnet18" if gpu else "cnn_small")
    batch = args.batch or (512 if gpu else 128 if args.smoke else 256)
    n = args.n or (50_000 if gpu else 1_024 if args.smoke else 20_480)
    cfg = config(device, model, batch, n, args.precision)
    ctx = setup(cfg)
    warm_up(ctx)

    strategy = build_strategy(cfg.prune, n, cfg.trainer.epochs, cfg.seed, device)
    net, bare = Trainable(ctx, 0), Trainable(ctx, 1)
    schedule = build_schedule(cfg.scheduler, cfg.trainer.epochs)
    epochs = iter(range(10_000))

    def real_epoch() -> int:
        """One epoch of the real loop; InfoBatch prunes from its second epoch on."""
        e = next(epochs) % 8
        plan = strategy.plan(e)
        train_epoch(ctx, net, schedule, e, plan, "bench", strategy=strategy)
        return len(plan)

    data = ctx.data.train  # eight batches prepared once: normalised, on the device, no augmentation
    batches = [(data.normalize(data.images[i * batch:(i + 1) * batch]), data.labels[i * batch:(i + 1) * batch])
               for i in range(min(8, n // batch))]

    def bare_epoch(samples: int) -> int:
        bare.model.train()
        steps = samples // batch
        for i in range(steps):
            x, y = batches[i % len(batches)]
            with autocast(device, ctx.precision):
                loss = F.cross_entropy(bare.model(x).float(), y)
            bare.optimizer.zero_grad(set_to_none=True)
            bare.scaler.scale(loss).backward()
            bare.scaler.step(bare.optimizer)
            bare.scaler.update()
        return steps * batch

    def images_per_s(fn, *a) -> float:
        start = timed_now(device)
        images = fn(*a)
        return images / (timed_now(device) - start)

    samples = real_epoch()  # warm both loops up, and put InfoBatch past its full first epoch
    bare_epoch(samples)
    real_ips, bare_ips = [], []
    for _ in range(args.repeats):  # interleaved: a slow stretch of the machine hits both loops alike
        real_ips.append(images_per_s(real_epoch))
        bare_ips.append(images_per_s(bare_epoch, samples))
    result = {
        "model": model, "batch": batch, "n": n, "precision": ctx.precision, "smoke": args.smoke,
        "real_images_per_s": median(real_ips), "bare_images_per_s": median(bare_ips),
        "efficiency": median(real_ips) / median(bare_ips),
        "real_images_per_s_all": real_ips, "bare_images_per_s_all": bare_ips,
    }
    print({k: v for k, v in result.items() if not k.endswith("_all")})
    write("loop_efficiency", device, result)


if __name__ == "__main__":
    main()
