"""What every benchmark shares: where it ran, honest timing, one JSON per benchmark."""

import argparse
import json
import os
import platform
import statistics
import sys
import time
from datetime import datetime, timezone
from pathlib import Path

import torch

from infobatch_runner.engine.hostmem import keep_freed_memory
from infobatch_runner.engine.runtime import device_name, synchronize

keep_freed_memory()  # as infobatch-run does: the benchmarks measure the tool as it runs
# BENCH_RESULTS moves the JSON elsewhere (make gpu-check keeps its own, and its smoke runs, apart).
RESULTS = Path(os.environ.get("BENCH_RESULTS") or Path(__file__).resolve().parent / "results")


def machine(device: torch.device) -> dict:
    return {
        "device": device_name(device),
        "machine": f"{platform.node()} ({platform.machine()}, {torch.get_num_threads()} torch threads)",
        "torch": torch.__version__,
        "python": platform.python_version(),
        "when": datetime.now(timezone.utc).isoformat(timespec="seconds"),
        "command": " ".join(["python -m", f"bench.{Path(sys.argv[0]).stem}", *sys.argv[1:]]).strip(),
    }


def timed(fn, device: torch.device, repeats: int, warmup: int = 2) -> list[float]:
    """Seconds per call, each call bracketed by device synchronisations."""
    for _ in range(warmup):
        fn()
    times = []
    for _ in range(repeats):
        synchronize(device)
        start = time.perf_counter()
        fn()
        synchronize(device)
        times.append(time.perf_counter() - start)
    return times


def median(xs: list[float]) -> float:
    return statistics.median(xs)


def write(name: str, device: torch.device, results: dict) -> Path:
    RESULTS.mkdir(parents=True, exist_ok=True)
    path = RESULTS / f"{name}.json"
    path.write_text(json.dumps({"benchmark": name, **machine(device), **results}, indent=2) + "\n")
    print(f"wrote {path}")
    return path


def add_common_args(parser: argparse.ArgumentParser, repeats_help: str) -> None:
    """The options every benchmark takes, so that `make bench BENCH_ARGS=...` can pass them to all."""
    parser.add_argument("--device", default="auto")
    parser.add_argument("--repeats", type=int, help=repeats_help)
    parser.add_argument("--smoke", action="store_true",
                        help="tiny sizes: checks that the benchmark runs (make gpu-check --device cpu); its figures mean nothing")


def pick_device(spec: str = "auto") -> torch.device:
    return torch.device("cuda" if spec == "auto" and torch.cuda.is_available() else ("cpu" if spec == "auto" else spec))
