"""Loader speed: seconds per epoch of the device-resident loader (crop + flip on the device)
against the DataLoader path (worker processes, CPU augmentation, pinned memory, non-blocking
copies) on the same CIFAR-size data, each batch consumed on the device.

    python -m bench.loader_speed [--device auto|cpu|cuda] [--workers W] [--batch B] [--n N] [--repeats R] [--smoke]
"""

import argparse
import os

import torch
from hydra import compose, initialize_config_module

from bench.common import add_common_args, median, pick_device, timed, write
from infobatch_runner.data.build import build_data


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    add_common_args(parser, "timed epochs per loader (default 3)")
    parser.add_argument("--workers", type=int, default=min(8, os.cpu_count() or 1))
    parser.add_argument("--batch", type=int, default=512)
    parser.add_argument("--n", type=int)
    args = parser.parse_args()
    args.n = args.n or (2_048 if args.smoke else 50_000)
    if args.smoke:
        args.workers, args.batch = min(args.workers, 2), min(args.batch, 256)
    device = pick_device(args.device)
    with initialize_config_module(version_base="1.3", config_module="infobatch_runner.conf"):
        cfg = compose(config_name="config", overrides=[
            "dataset=synthetic", f"dataset.num_train={args.n}", "dataset.num_test=64", "dataset.image_size=32",
            "dataset.channels=3", "dataset.augment.crop_padding=4", "dataset.augment.flip=true"])
    result = {"n": args.n, "batch": args.batch, "workers": args.workers, "smoke": args.smoke}
    for loader in ("device", "dataloader"):
        data = build_data(cfg.dataset, args.batch, args.batch, args.workers, device, True, 0, loader=loader)
        plan = torch.randperm(args.n, device=device)
        sink = torch.zeros((), device=device)

        def epoch():
            for b in data.train.iterate(plan):
                sink.add_(b.x[0, 0, 0, 0])  # consume each batch on the device

        result[f"{loader}_epoch_s"] = median(timed(epoch, device, repeats=args.repeats or 3, warmup=1))
        print(f"{loader:10s} {result[f'{loader}_epoch_s']:.3f} s/epoch")
    result["speedup"] = result["dataloader_epoch_s"] / result["device_epoch_s"]
    write("loader_speed", device, result)


if __name__ == "__main__":
    main()
