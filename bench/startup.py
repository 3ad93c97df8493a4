"""Start-up times a user feels before any work: `infobatch-run --help` and `import
infobatch_runner.library`, each a fresh interpreter, median of --repeats, against `import torch`
alone (the floor the library cannot go under). Targets: --help under 1.5 s (it imports no torch),
the library under 1 s on top of torch.

    python -m bench.startup [--repeats 7]
"""

import argparse
import shutil
import subprocess
import sys
import time
from pathlib import Path

import torch

from bench.common import add_common_args, median, write

HELP_TARGET_S, LIBRARY_OVER_TORCH_TARGET_S = 1.5, 1.0


def seconds(command: list[str]) -> float:
    """Wall time of a fresh process running `command`."""
    start = time.perf_counter()
    subprocess.run(command, check=True, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    return time.perf_counter() - start


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    add_common_args(parser, "fresh processes per command (default 7)")
    args = parser.parse_args()
    repeats = 2 if args.smoke else (args.repeats or 7)
    cli = shutil.which("infobatch-run") or str(Path(sys.executable).with_name("infobatch-run"))
    # One untimed run each warms the disk cache; then interleaved, so that a change in the machine's
    # load touches all three alike.
    commands = {"torch": [sys.executable, "-c", "import torch"],
                "library": [sys.executable, "-c", "import infobatch_runner.library"],
                "help": [cli, "--help"]}
    for command in commands.values():
        seconds(command)
    rounds = {name: [] for name in commands}
    for _ in range(repeats):
        for name, command in commands.items():
            rounds[name].append(seconds(command))
    torch_s, library_s, help_s = (median(rounds[name]) for name in commands)
    results = {"repeats": repeats, "smoke": args.smoke, "import_torch_s": torch_s, "import_library_s": library_s,
               "library_over_torch_s": library_s - torch_s, "help_s": help_s,
               "help_target_s": HELP_TARGET_S, "library_over_torch_target_s": LIBRARY_OVER_TORCH_TARGET_S,
               "help_met": help_s < HELP_TARGET_S, "library_met": library_s - torch_s < LIBRARY_OVER_TORCH_TARGET_S}
    print(f"import torch {torch_s:.2f} s; import infobatch_runner.library {library_s:.2f} s "
          f"(+{library_s - torch_s:.2f} s over torch, target < {LIBRARY_OVER_TORCH_TARGET_S:g}); "
          f"infobatch-run --help {help_s:.2f} s (target < {HELP_TARGET_S:g})")
    write("startup", torch.device("cpu"), results)


if __name__ == "__main__":
    main()
