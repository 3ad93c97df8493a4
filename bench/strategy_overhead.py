"""Strategy overhead: plan milliseconds per epoch and observe microseconds per batch, for every
strategy at CIFAR (N = 50,000) and ImageNet (N = 1,281,167) size, beside a reference written
in the style of the published InfoBatch code (numpy selection, a host copy of the losses at
every step), measured in the same run.

    python -m bench.strategy_overhead [--device auto|cpu|cuda] [--batch 256] [--repeats R] [--smoke]
"""

import argparse

import numpy as np
import torch

from bench.common import add_common_args, median, pick_device, timed, write
from infobatch_runner.pruning import STRATEGIES

SIZES = (50_000, 1_281_167)
SMOKE_SIZES = (2_000,)


class PublishedStyleInfoBatch:
    """InfoBatch as the published code does it: scores in a numpy array fed by a host copy of
    every batch's losses, selection with np.where / np.random.choice, weights reset each epoch."""

    def __init__(self, n: int, ratio: float = 0.5, seed: int = 0):
        self.scores = np.full(n, 3.0)
        self.weights = np.ones(n, dtype=np.float32)
        self.ratio = ratio
        self.rng = np.random.default_rng(seed)

    def observe(self, indices: torch.Tensor, losses: torch.Tensor) -> None:
        self.scores[indices.cpu().numpy()] = losses.detach().float().cpu().numpy()

    def plan(self, epoch: int):
        well = np.where(self.scores < self.scores.mean())[0]
        selected = self.rng.choice(well, int(len(well) * (1 - self.ratio)), replace=False)
        self.weights[:] = 1.0
        self.weights[selected] = 1.0 / (1.0 - self.ratio)
        keep = np.ones(len(self.scores), dtype=bool)
        keep[well] = False
        keep[selected] = True
        indices = np.nonzero(keep)[0]
        self.rng.shuffle(indices)
        return torch.from_numpy(indices), torch.from_numpy(self.weights[indices])


def prepared(name: str, n: int, device: torch.device):
    """A strategy in mid-run state: every sample observed once, scores set for static ones."""
    g = torch.Generator(device=device).manual_seed(0)
    s = STRATEGIES[name](n, 10, 0, device) if name != "reference" else PublishedStyleInfoBatch(n)
    if getattr(s, "scoring", lambda: None)() is not None:
        s.set_scores(torch.rand(n, generator=g, device=device))
    s.observe(torch.arange(n, device=device), torch.rand(n, generator=g, device=device))
    return s


def measure(name: str, n: int, device: torch.device, batch: int, repeats: int | None = None) -> dict:
    s = prepared(name, n, device)
    epochs = iter(range(1, 10_000))
    plan_s = timed(lambda: s.plan(next(epochs) % 8 or 1), device, repeats=repeats or 7)
    idx = torch.randperm(n, device=device)[:batch]
    losses = torch.rand(batch, device=device)
    observe_s = timed(lambda: [s.observe(idx, losses) for _ in range(100)], device, repeats=repeats or 5)
    return {"plan_ms": 1e3 * median(plan_s), "observe_us": 1e6 * median(observe_s) / 100}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    add_common_args(parser, "timed plans (default 7) and timed batches of 100 observes (default 5)")
    parser.add_argument("--batch", type=int, default=256)
    args = parser.parse_args()
    device = pick_device(args.device)
    sizes = SMOKE_SIZES if args.smoke else SIZES
    results = {"batch": args.batch, "smoke": args.smoke, "sizes": {}}
    for n in sizes:
        rows = {name: measure(name, n, device, args.batch, args.repeats) for name in sorted(STRATEGIES)}
        rows["reference (published style)"] = measure("reference", n, device, args.batch, args.repeats)
        ours, ref = rows["infobatch"], rows["reference (published style)"]
        rows["infobatch vs reference"] = {"plan_speedup": ref["plan_ms"] / ours["plan_ms"],
                                          "observe_speedup": ref["observe_us"] / ours["observe_us"]}
        results["sizes"][str(n)] = rows
        print(f"N = {n:,}")
        for name, r in rows.items():
            print(f"  {name:28s} " + "  ".join(f"{k} {v:9.2f}" for k, v in r.items()))
    if device.type == "cuda":  # observe must never wait for the device: any sync raises here
        s = prepared("infobatch", sizes[0], device)
        torch.cuda.set_sync_debug_mode("error")
        s.observe(torch.arange(args.batch, device=device), torch.rand(args.batch, device=device))
        torch.cuda.set_sync_debug_mode(0)
        results["observe_host_sync"] = False
    write("strategy_overhead", device, results)


if __name__ == "__main__":
    main()
