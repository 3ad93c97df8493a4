import torch

from infobatch_runner.errors import UserError
from infobatch_runner.pruning.base import Plan, Strategy, check_range


def trained_epochs(saving: float, epochs: int) -> int:
    """E' = round((1 - s) * E): the whole epochs that save s of E."""
    return round((1.0 - saving) * epochs)


class ShortSchedule(Strategy):
    """The honest baseline of every saving: full data for fewer epochs.

    To save s of an E-epoch run, train all data, weight 1, for E' = round((1 - s) * E) epochs, with
    the whole learning-rate schedule compressed into them (`schedule_epochs`: the runner builds
    the schedule over E' epochs); the remaining E - E' epochs train nothing. The run keeps
    trainer.epochs = E, so it is paired with the E-epoch full run and its saving counted against
    it: a realised 1 - E'/E, the nearest whole number of epochs to s (0.25, not 0.3, at E = 8).
    Any claim that a strategy saves s at no loss must beat this at the same saving.

    s is `target_saving`, or `ratio` when no target is given (so that `prune.ratio=` sweeps compose
    with it). The default ratio, 0.4, saves a little more than InfoBatch at its defaults (29% of the
    demo's samples; 5 of 8 epochs is 37.5%): the cheapest rival a saving must beat, and with the full
    run a budget curve that InfoBatch's cost lies on, so `prune=full,infobatch,short_schedule` (make
    run) says whether InfoBatch beat training fewer epochs. Cost: one permutation per trained epoch; observe does nothing.
    """

    name = "short_schedule"

    def __init__(self, num_samples, epochs, seed, device="cpu", ratio: float = 0.4, target_saving: float | None = None):
        saving = check_range("ratio", ratio, 0.0, 1.0, high_open=True) if target_saving is None else \
            check_range("target_saving", target_saving, 0.0, 1.0, low_open=True, high_open=True)
        super().__init__(num_samples, epochs, seed, device)
        self.schedule_epochs = trained_epochs(saving, epochs)
        # A target the whole epochs cannot give is out of reach, like another strategy's (a sweep's job
        # then fails alone, "unattainable" in the leaderboard); a ratio is a plain bad value.
        asked = f"prune.target_saving={saving:g} cannot be reached: it" if target_saving is not None else \
            f"prune=short_schedule saving {saving:g} of {epochs} epochs"
        if self.schedule_epochs < 1:
            raise UserError(f"{asked} trains round({1 - saving:g} x {epochs}) = 0 epochs; lower the saving or train "
                            "more epochs.")
        if saving > 0 and self.schedule_epochs >= epochs:  # a saving asked for that whole epochs cannot give
            raise UserError(f"{asked} trains round({1 - saving:g} x {epochs}) = {epochs} epochs, all of them: no "
                            f"saving; raise the saving above {0.5 / epochs:g} or train more epochs.")

    @classmethod
    def run_params(cls, params: dict, epochs: int) -> dict:
        """Whole epochs: savings that round to the same epochs are one run (0.3, 0.5 and 0.7 of 2 epochs
        all train 1)."""
        saving = params.get("ratio") if params.get("target_saving") is None else params["target_saving"]
        return {"epochs_trained": trained_epochs(saving, epochs)}

    def plan(self, epoch: int) -> Plan:
        if epoch < self.schedule_epochs:
            return self.full_plan()
        nothing = torch.zeros(0, dtype=torch.int64, device=self.device)
        return Plan(nothing, torch.zeros(0, device=self.device))
