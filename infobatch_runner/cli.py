"""`infobatch-run`: compose the Hydra config, validate it, train, report.

Bad input ends in one sentence on stderr and exit status 2, never a traceback.
"""

import logging
import signal
import sys
from pathlib import Path

import hydra
from hydra.core.hydra_config import HydraConfig
from hydra.types import RunMode
from omegaconf import DictConfig

from infobatch_runner.errors import UserError
from infobatch_runner.loop import Interrupted

log = logging.getLogger("infobatch_runner")


@hydra.main(version_base="1.3", config_path="pkg://infobatch_runner.conf", config_name="config")
def run(cfg: DictConfig) -> float:
    from infobatch_runner.distributed import world_from_env
    from infobatch_runner.train import closing_line, train
    from infobatch_runner.validate import validate

    try:
        validate(cfg)
        hydra_cfg = HydraConfig.get()
        sweep_dir = Path(hydra_cfg.sweep.dir) if hydra_cfg.mode == RunMode.MULTIRUN else None
        summary = train(cfg, Path(hydra_cfg.runtime.output_dir), sweep_dir)
    except UserError as exc:
        print(f"infobatch-run: error: {exc}", file=sys.stderr)
        sys.exit(2)
    except Interrupted as exc:
        print(f"infobatch-run: {exc}", file=sys.stderr)
        sys.exit(128 + getattr(signal, exc.signal))
    if world_from_env().is_main:
        print(closing_line(summary), flush=True)
    return summary["final/test_acc"]  # what a Hydra sweeper (e.g. Optuna) would optimise


def main() -> None:
    from infobatch_runner.choices import check_group_choices
    from infobatch_runner.distributed import agreed_overrides, world_from_env
    from infobatch_runner.hostmem import keep_freed_memory

    keep_freed_memory()
    try:
        check_group_choices(sys.argv[1:])
    except UserError as exc:
        print(f"infobatch-run: error: {exc}", file=sys.stderr)
        sys.exit(2)
    sys.argv += agreed_overrides(world_from_env(), sys.argv[1:])  # under torchrun: one run folder
    run()


if __name__ == "__main__":
    main()
