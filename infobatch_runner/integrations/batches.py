"""The loader side of a Pruner: a batch sampler that walks this rank's share of the current plan,
and a dataset wrapper whose samples carry their index (so the loss weight can be looked up)."""

import sys
import weakref
from collections.abc import Mapping

from torch.utils.data import DataLoader, Dataset, IterableDataset, Sampler

from infobatch_runner.data.loaders import batch_slices, batch_starts


class PrunedBatchSampler(Sampler):
    """Batches of sample indices walking this rank's share of the pruner's current plan, for
    DataLoader(batch_sampler=...). Its length is the current plan's (set_epoch() plans before the
    epoch starts). Batches as the runner cuts them (data/loaders.batch_starts): a remainder under half a
    batch shares the last full batch, as two batches of at least half a batch."""

    def __init__(self, pruner, batch_size: int):
        if isinstance(batch_size, bool) or not isinstance(batch_size, int) or batch_size < 1:
            raise ValueError(f"batch_size must be an integer >= 1 (got {batch_size!r})")
        self.pruner = pruner
        self.batch_size = batch_size
        self._loader: weakref.ref | None = None  # the DataLoader this sampler feeds

    def set_epoch(self, epoch: int) -> None:
        """DistributedSampler's hook (Lightning and many loops call it): plans `epoch`."""
        self.pruner.set_epoch(epoch)

    def _start_pass(self) -> None:
        """Which epoch the next pass walks: a state restored after all of its epoch's batches counts
        as a walked plan (the pass is the next epoch's), then the rule of next_epoch_if_walked."""
        pruner = self.pruner
        if pruner._resume_at and pruner._resume_at >= len(batch_starts(len(pruner.current()), self.batch_size)):
            pruner._resume_at, pruner._walked = 0, True
        pruner.next_epoch_if_walked()

    def __len__(self) -> int:
        """The batches this pass hands out: the epoch's, less those a restored state already trained."""
        self._start_pass()
        return len(batch_starts(len(self.pruner.current()), self.batch_size)) - self.pruner._resume_at

    def __iter__(self):
        # the DataLoader (iterator) that calls iter() on its batch sampler has it as `loader`
        self._check_one_loader(sys._getframe(1).f_locals.get("loader"))
        self._start_pass()
        first, self.pruner._resume_at = self.pruner._resume_at, 0  # a restored state resumes once, mid-epoch
        return _batches(self.pruner, self.pruner.local_indices(), self.batch_size, first)  # the plan is read now

    def _check_one_loader(self, loader) -> None:
        """One batch sampler, one DataLoader: a second loader on it (a validation loader, say) would
        walk the training's plan and, without set_epoch, plan the next epoch, so that the training
        skips epochs, or runs out of them with a misleading error. Once per pass, before any change."""
        if not isinstance(loader, DataLoader):
            return
        mine = self._loader() if self._loader is not None else None
        if mine is not None and mine is not loader:
            raise RuntimeError("this batch sampler already feeds another DataLoader, and a second one is iterating it: "
                               "each pass walks the training's current plan (and, without set_epoch, plans the next "
                               "epoch); give the other loader a sampler of its own (one pruner.batch_sampler(...) per "
                               "training DataLoader)")
        self._loader = weakref.ref(loader)


def _batches(pruner, indices: list[int], batch_size: int, first: int = 0):
    for a, b in batch_slices(len(indices), batch_size, first):
        yield indices[a:b]
    pruner._walked = True  # the whole plan was handed out: without set_epoch, the next pass is the next epoch


class IndexedDataset(Dataset):
    """A map-style dataset whose samples carry their index: (x, y) -> (x, y, index), a dict gets a
    `key` entry ("index" by default; a sample that has one already is refused rather than
    overwritten), any other sample s (a namedtuple included, which keeps its type) -> (s, index).
    Samples are loaded by the wrapped dataset."""

    def __init__(self, dataset, key: str = "index"):
        if isinstance(dataset, IterableDataset) or not hasattr(dataset, "__getitem__") or not hasattr(dataset, "__len__"):
            raise TypeError(f"IndexedDataset needs a map-style dataset (with __getitem__ and __len__), not a "
                            f"{type(dataset).__name__}: a pruner picks samples by index")
        self.dataset = dataset
        self.key = key

    def __len__(self) -> int:
        return len(self.dataset)

    def __getitem__(self, index: int):
        sample = self.dataset[index]
        if isinstance(sample, tuple | list) and not hasattr(sample, "_fields"):
            return (*sample, index)
        if isinstance(sample, Mapping):
            if self.key in sample:
                raise KeyError(f"the sample already has a {self.key!r} entry; give IndexedDataset(dataset, key=...) "
                               "a name of its own")
            return {**sample, self.key: index}
        return sample, index
