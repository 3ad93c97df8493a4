from infobatch_runner.pruning.base import Plan, Strategy


class Full(Strategy):
    """Every sample, every epoch, weight 1: the baseline every comparison needs."""

    name = "full"

    def __init__(self, num_samples, epochs, seed, device="cpu", ratio: float = 0.0, target_saving: float | None = None):
        # ratio and target_saving are accepted so that sweeps over them compose with prune=full; ignored.
        super().__init__(num_samples, epochs, seed, device)

    @classmethod
    def ignored_params(cls, params) -> set[str]:
        return {"ratio", "target_saving"}

    def plan(self, epoch: int) -> Plan:
        return self.full_plan()
