"""A per-epoch progress bar that shows the running loss without ever waiting for the device."""

import math
import sys

import torch
from tqdm import tqdm

REFRESH_EVERY = 20  # steps between loss refreshes on the bar


class LaggedScalar:
    """Reads a device scalar without a host sync: copies it asynchronously into pinned host memory
    and returns the newest copy that has already landed (a few steps old on a GPU)."""

    def __init__(self, device: torch.device):
        self.cuda = device.type == "cuda"
        self.host = torch.zeros((), pin_memory=self.cuda)
        self.event = None
        self.value = math.nan

    def read(self, value: torch.Tensor) -> float:
        if not self.cuda:
            return float(value)  # on the CPU the value is already computed
        if self.event is None or self.event.query():
            if self.event is not None:
                self.value = float(self.host)
            self.host.copy_(value.detach(), non_blocking=True)
            self.event = torch.cuda.Event()
            self.event.record()
        return self.value


class EpochBar:
    def __init__(self, enabled, desc: str, steps: int, kept_fraction: float, device: torch.device, done: int = 0):
        disable = None if enabled == "auto" else not enabled  # None: a bar on a terminal only
        self.bar = tqdm(total=steps, initial=done, desc=desc, unit="batch", leave=False,
                        disable=disable, file=sys.stderr, dynamic_ncols=True)
        self.kept = f"{100 * kept_fraction:.1f}%"
        self.loss = LaggedScalar(device)
        self.bar.set_postfix(kept=self.kept, refresh=False)

    def step(self, step: int, loss_sum: torch.Tensor, samples: int) -> None:
        if self.bar.disable:
            return
        if step % REFRESH_EVERY == 0:
            self.bar.set_postfix(kept=self.kept, loss=f"{self.loss.read(loss_sum / samples):.4f}", refresh=False)
        self.bar.update()

    def close(self) -> None:
        self.bar.close()
