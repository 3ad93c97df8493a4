"""Hydra callback: at the end of every multirun, write the comparison into the sweep folder."""

import logging
from pathlib import Path

from hydra.experimental.callback import Callback
from omegaconf import DictConfig

from infobatch_runner.errors import first_line

log = logging.getLogger(__name__)


class SweepReport(Callback):
    failed_jobs = 0  # read by the CLI once the sweep is over: any failure makes its exit status 1
    report_error: str | None = None  # why the report could not be written (the CLI exits 1 saying so)

    def on_multirun_end(self, config: DictConfig, **kwargs) -> None:
        """Hydra only warns when a callback raises, and the sweep would exit 0 without its report:
        the failure is kept for the CLI to say in one sentence, with the command that writes it."""
        try:
            self._report(config)
        except Exception as exc:
            SweepReport.report_error = (f"the sweep's report could not be written ({first_line(exc)}); write it with "
                                        f"infobatch-report {config.hydra.sweep.dir}")

    def _report(self, config: DictConfig) -> None:
        from infobatch_runner.results import trials
        from infobatch_runner.results.render import compact_table
        from infobatch_runner.results.report import write_report
        from infobatch_runner.results.runs import UNFINISHED
        from infobatch_runner.results.wandb_runs import add_paired_figures_to_wandb, log_report_to_wandb

        sweep_dir = Path(config.hydra.sweep.dir)
        try:
            report = write_report([sweep_dir], sweep_dir)
        except FileNotFoundError:
            log.warning("no finished run in %s: no report written", sweep_dir)
            return
        # A job whose records cannot be read (skipped by the report) failed the sweep as surely as one
        # that recorded its failure: both make the exit status 1.
        SweepReport.failed_jobs = len(report.failed) + len(report.skipped)
        if report.trials:
            print("\n" + trials.console(report.trials), flush=True)
        if report.rows:
            print("\n" + compact_table(report.rows), flush=True)
        for failure in report.failed:
            what = UNFINISHED if failure.type == UNFINISHED else "failed"
            print(f"{what}: {failure.path.name}: {failure.error}", flush=True)
        for path, why in report.skipped:
            print(f"unreadable: {path.name}: {why}", flush=True)
        beside = ", ".join(p.name for p in report.files[1:3]) + (" and the plots" if len(report.files) > 3 else "")
        print(f"report: {sweep_dir / 'report.md'} ({beside} beside it)", flush=True)
        logger = config.logger
        if logger.name == "wandb" and logger.mode != "disabled" and (report.rows or report.trials):
            add_paired_figures_to_wandb(report.updated)
            log_report_to_wandb(report, logger, sweep_dir)
