"""Savings realisation: how much of the sample saving reaches the wall clock, saving_wall /
saving_samples, for InfoBatch and random_dynamic against full data on the same short run,
the three interleaved (in rotated order) and repeated in one process; median costs.

    python -m bench.savings [--device auto|cpu|cuda] [--repeats R] [--smoke]
    (CPU: cnn_small on 20,000 Fashion-MNIST images, 6 epochs; CUDA: resnet18 on 50,000 CIFAR-size images, 10 epochs, bf16;
    --smoke: cnn_small on 1,024 synthetic 16-pixel images, 3 epochs)
"""

import argparse
import statistics
import tempfile
from pathlib import Path

from hydra import compose, initialize_config_module

from bench.common import add_common_args, pick_device, write
from infobatch_runner.engine.train import train

STRATEGIES = ("full", "infobatch", "random_dynamic")


def overrides(device, smoke: bool = False) -> list[str]:
    common = ["logger=none", "trainer.progress=false", f"trainer.device={device}"]
    if smoke:
        return common + ["dataset=synthetic", "dataset.num_train=1024", "dataset.num_test=256", "dataset.image_size=16",
                         "model=cnn_small", "trainer.batch_size=128", "trainer.epochs=3"]
    if device.type == "cuda":
        return common + ["dataset=synthetic", "dataset.num_train=50000", "dataset.num_test=2000", "dataset.image_size=32",
                         "dataset.channels=3", "dataset.augment.crop_padding=4", "dataset.augment.flip=true",
                         "model=resnet18", "trainer.batch_size=512", "trainer.epochs=10"]
    return common + ["experiment=fashion_mnist_quick", "dataset.limit_train=20000", "dataset.limit_test=2000",
                     "trainer.epochs=6"]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    add_common_args(parser, "interleaved repeats of the three runs (default 5)")
    args = parser.parse_args()
    args.repeats = args.repeats or 5
    device = pick_device(args.device)
    config = overrides(device, args.smoke)
    runs = {name: [] for name in STRATEGIES}
    with tempfile.TemporaryDirectory() as tmp:
        for r in range(args.repeats):
            for name in STRATEGIES[r % 3:] + STRATEGIES[: r % 3]:  # rotated: no strategy always runs first
                with initialize_config_module(version_base="1.3", config_module="infobatch_runner.conf"):
                    cfg = compose(config_name="config", overrides=config + [f"prune={name}"])
                runs[name].append(train(cfg, Path(tmp) / f"{name}-{r}"))
    # Medians over the repeats: a stretch of a busy machine hits one run, not the comparison.
    base_cost = statistics.median(s["time_cost_s"] for s in runs["full"])
    result = {"config": config, "smoke": args.smoke, "repeats": args.repeats, "full_time_cost_s": base_cost, "strategies": {}}
    for name in STRATEGIES[1:]:
        cost = statistics.median(s["time_cost_s"] for s in runs[name])
        saving_samples = statistics.fmean(s["saving_samples"] for s in runs[name])
        saving_wall = 1 - cost / base_cost
        result["strategies"][name] = {
            "time_cost_s": cost, "saving_samples": saving_samples, "saving_wall": saving_wall,
            "realisation": saving_wall / saving_samples,
            "time_cost_s_all": [s["time_cost_s"] for s in runs[name]],
        }
        print(f"{name:15s} saving_samples {saving_samples:.3f}  saving_wall {saving_wall:.3f}  "
              f"realisation {saving_wall / saving_samples:.3f}")
    result["full_time_cost_s_all"] = [s["time_cost_s"] for s in runs["full"]]
    write("savings", device, result)


if __name__ == "__main__":
    main()
