from infobatch_runner.pruning.base import Plan, Strategy


class Full(Strategy):
    """Every sample, every epoch, weight 1: the baseline every comparison needs."""

    name = "full"

    def __init__(self, num_samples, epochs, seed, device="cpu", ratio: float = 0.0):
        # ratio is accepted so that a sweep over prune.ratio composes with prune=full; it is ignored.
        super().__init__(num_samples, epochs, seed, device)

    def plan(self, epoch: int) -> Plan:
        return self.full_plan()
