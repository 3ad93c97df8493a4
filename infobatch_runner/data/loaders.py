"""Two loaders that consume an epoch plan and yield batches (x, y, idx, w) on the training device.

- DeviceLoader: the whole uint8 dataset lives on the device; a batch is an index into it, with
  random crop and flip done on the device. For datasets that fit (Fashion-MNIST, CIFAR).
- StreamLoader: a DataLoader over files whose batch sampler walks the current plan, for trees
  that do not fit (ImageNet). Its length is the current plan's, set before the epoch starts.

Both hand over the batch's sample indices and per-sample loss weights, sliced from the plan.
"""

from dataclasses import dataclass
from typing import Iterator

import torch
import torch.nn.functional as F
from torch.utils.data import DataLoader, Sampler

from infobatch_runner.data.arrays import ImageArrays
from infobatch_runner.data.messages import worker_sentence
from infobatch_runner.errors import UserError


@dataclass
class Batch:
    x: torch.Tensor  # float, normalised, on the device
    y: torch.Tensor  # int64 labels
    idx: torch.Tensor  # int64 sample indices into the training set
    w: torch.Tensor  # float32 loss weights


class Normalize:
    """uint8 (B, C, H, W) on the device -> float32, standardised per channel, optionally channels_last."""

    def __init__(self, mean, std, channels: int, device: torch.device, channels_last: bool):
        def per_channel(values):
            t = torch.tensor(list(values), dtype=torch.float32, device=device)
            return t.expand(channels).reshape(1, channels, 1, 1) if t.numel() == 1 else t.reshape(1, channels, 1, 1)

        self.scale = 1.0 / (255.0 * per_channel(std))
        self.shift = per_channel(mean) / per_channel(std)
        self.memory_format = torch.channels_last if channels_last else torch.contiguous_format

    def __call__(self, x: torch.Tensor) -> torch.Tensor:
        return (x.float() * self.scale - self.shift).contiguous(memory_format=self.memory_format)


def random_crop(x: torch.Tensor, padding: int, gen: torch.Generator) -> torch.Tensor:
    """Zero-pad by `padding` and crop back at a random offset per image (torchvision's RandomCrop),
    as one gather over each padded image's flattened pixels: no host sync, no per-image loop."""
    b, c, h, w = x.shape
    padded = F.pad(x, (padding,) * 4)
    hp, wp = h + 2 * padding, w + 2 * padding
    dev = x.device
    dy = torch.randint(0, 2 * padding + 1, (b, 1, 1), device=dev, generator=gen)
    dx = torch.randint(0, 2 * padding + 1, (b, 1, 1), device=dev, generator=gen)
    rows = torch.arange(h, device=dev).view(1, h, 1) + dy
    cols = torch.arange(w, device=dev).view(1, 1, w) + dx
    flat = (rows * wp + cols).view(b, 1, h * w).expand(b, c, h * w)
    return padded.reshape(b, c, hp * wp).gather(2, flat).view(b, c, h, w)


def random_flip(x: torch.Tensor, gen: torch.Generator) -> torch.Tensor:
    flip = torch.rand(x.shape[0], device=x.device, generator=gen) < 0.5
    return torch.where(flip[:, None, None, None], x.flip(-1), x)


def batch_starts(n: int, batch_size: int) -> list[int]:
    """Start offsets of the batches of an n-sample plan: full batches, except that a remainder
    of under half a batch is not trained alone. It and the last full batch are split into two
    batches of about equal size, each of at least half a batch.

    A pruned plan's length is arbitrary, so its remainder can be a handful of samples. Trained
    alone, such a batch takes a full learning-rate step on the mean gradient of a few samples,
    with BatchNorm statistics of those few. Near the peak of a one-cycle schedule that one step
    derailed the model: test accuracy 0.47 after an epoch of 16-sample tail, 0.77 with this split
    (random_dynamic, ratio 0.3, seed 1, fashion_mnist_quick; docs/leaderboard.md's "Batches: why no curve
    collapses mid-run"). Every sample still trains once, in as many steps as before, and no batch
    exceeds batch_size (but with batch_size 2, where a last lone sample joins the batch before it:
    BatchNorm cannot train on one)."""
    starts = list(range(0, n, batch_size))
    if len(starts) < 2:
        return starts
    tail = n - starts[-1]
    if 2 * tail < batch_size:
        starts[-1] = n - (batch_size + tail) // 2
    elif tail == 1:  # batch_size 2: three samples cannot make two batches of two
        starts.pop()
    return starts


def steps_for(n: int, batch_size: int) -> int:
    return len(batch_starts(n, batch_size))


def batch_slices(n: int, batch_size: int, first: int = 0):
    """(start, end) of each batch, from batch number `first` on (a resumed epoch skips those done)."""
    starts = batch_starts(n, batch_size)
    return [(a, b) for a, b in zip(starts, starts[1:] + [n])][first:]


class DeviceLoader:
    def __init__(self, arrays: ImageArrays, batch_size: int, device: torch.device, normalize: Normalize,
                 crop_padding: int = 0, flip: bool = False, seed: int = 0):
        self.images = arrays.images.to(device)
        self.labels = arrays.labels.to(device)
        self.batch_size = batch_size
        self.normalize = normalize
        self.crop_padding = crop_padding
        self.flip = flip
        self.gen = torch.Generator(device=device).manual_seed(seed)

    def __len__(self) -> int:
        return self.images.shape[0]

    def num_batches(self, n: int) -> int:
        return steps_for(n, self.batch_size)

    def iterate(self, indices: torch.Tensor, weights: torch.Tensor | None = None, first_batch: int = 0) -> Iterator[Batch]:
        if weights is None:
            weights = torch.ones(indices.shape[0], device=indices.device)
        for start, end in batch_slices(indices.shape[0], self.batch_size, first_batch):
            idx = indices[start:end]
            x = self.images.index_select(0, idx)
            if self.crop_padding:
                x = random_crop(x, self.crop_padding, self.gen)
            if self.flip:
                x = random_flip(x, self.gen)
            yield Batch(self.normalize(x), self.labels.index_select(0, idx), idx, weights[start:end])


class PlanBatchSampler(Sampler):
    """Yields consecutive slices of the current plan; set_plan() before each epoch."""

    def __init__(self, batch_size: int):
        self.batch_size = batch_size
        self.indices: list[int] = []
        self.first = 0

    def set_plan(self, indices: torch.Tensor, first_batch: int = 0) -> None:
        self.indices = indices.cpu().tolist()  # one host copy per epoch, not per batch
        self.first = first_batch

    def __len__(self) -> int:
        return steps_for(len(self.indices), self.batch_size) - self.first

    def __iter__(self):
        for start, end in batch_slices(len(self.indices), self.batch_size, self.first):
            yield self.indices[start:end]


class StreamLoader:
    def __init__(self, dataset, batch_size: int, device: torch.device, normalize: Normalize, num_workers: int,
                 seed: int | None = None):
        """`seed` (training loaders): the generator the workers' seeds are drawn from, so that the
        augmentation stream is the run's (and each rank's own) rather than the global RNG's."""
        self.dataset = dataset
        self.batch_size = batch_size
        self.device = device
        self.normalize = normalize
        self.sampler = PlanBatchSampler(batch_size)
        if seed is not None:
            self.gen = torch.Generator().manual_seed(seed)
        self.loader = DataLoader(
            dataset,
            batch_sampler=self.sampler,
            num_workers=num_workers,
            pin_memory=device.type == "cuda",
            persistent_workers=num_workers > 0,
            generator=getattr(self, "gen", None),
        )

    def __len__(self) -> int:
        return len(self.dataset)

    def num_batches(self, n: int) -> int:
        return steps_for(n, self.batch_size)

    def close(self) -> None:
        """Stop the persistent worker processes now (they would otherwise live until garbage collection)."""
        self._stop_workers(getattr(self.loader, "_iterator", None))

    def _stop_workers(self, batches) -> None:
        """End a failed epoch's worker processes now, not at garbage collection: an iterator still alive
        is copied into the workers forked later, which then stall on (or print tracebacks from) its shutdown."""
        shutdown = getattr(batches, "_shutdown_workers", None)
        if shutdown is not None:
            shutdown()
        if getattr(self.loader, "_iterator", None) is batches:
            self.loader._iterator = None  # the next epoch starts fresh workers

    def _batches(self):
        """The DataLoader's batches. A UserError raised in a worker process (a corrupt image) comes back
        wrapped in the worker's traceback: re-raise it as the original one sentence."""
        batches = iter(self.loader)
        while True:
            try:
                batch = next(batches)
            except StopIteration:
                return
            except UserError as err:
                sentence = worker_sentence(err)
            else:
                yield batch
                continue
            # Outside the except clause, so that the new error keeps no reference (as __context__) to
            # the failed DataLoader iterator, whose workers are stopped here.
            self._stop_workers(batches)
            del batches
            raise UserError(sentence)

    def iterate(self, indices: torch.Tensor, weights: torch.Tensor | None = None, first_batch: int = 0) -> Iterator[Batch]:
        if weights is None:
            weights = torch.ones(indices.shape[0], device=self.device)
        self.sampler.set_plan(indices, first_batch)
        start = batch_starts(indices.shape[0], self.batch_size)[first_batch] if first_batch else 0
        for x, y, idx in self._batches():
            n = idx.shape[0]
            x = x.to(self.device, non_blocking=True)
            yield Batch(
                self.normalize(x),
                y.to(self.device, non_blocking=True),
                idx.to(self.device, non_blocking=True),
                weights[start : start + n],
            )
            start += n
