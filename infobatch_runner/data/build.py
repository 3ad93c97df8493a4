"""From cfg.dataset to plan-driven loaders on the training device: train, train without
augmentation, test and, with dataset.val_fraction > 0, a validation split held out of training."""

import copy
from dataclasses import dataclass

import torch
from omegaconf import DictConfig

from infobatch_runner.data.arrays import ArrayImages, ImageArrays
from infobatch_runner.data.cifar import load_cifar
from infobatch_runner.data.folder import load_folder_splits
from infobatch_runner.data.idx import load_fashion_mnist
from infobatch_runner.data.loaders import DeviceLoader, Normalize, StreamLoader
from infobatch_runner.data.synthetic import make_synthetic
from infobatch_runner.errors import UserError


@dataclass
class DataBundle:
    train: DeviceLoader | StreamLoader
    train_eval: DeviceLoader | StreamLoader  # the training set without augmentation, for scoring
    test: DeviceLoader | StreamLoader
    num_classes: int
    channels: int
    image_size: int
    val: DeviceLoader | StreamLoader | None = None  # the held-out split, without augmentation (None: no split)
    train_indices: torch.Tensor | None = None  # with a split: which samples of the training set train (sorted)
    val_indices: torch.Tensor | None = None  # ... and which are held out (sorted)


# The generator seed of the validation split: fixed, independent of the run's seed, so that every run
# (every seed, every strategy, every trial of a search) holds out the same samples and its strategy
# prunes the same N training samples; runs of different seeds stay pairable, and a search compares
# its trials on one validation set.
VAL_SPLIT_SEED = 0


def val_split(n: int, fraction: float) -> tuple[torch.Tensor, torch.Tensor]:
    """(training indices, validation indices) of an n-sample training set, both sorted: round(fraction
    * n) samples (at least one when fraction > 0) drawn uniformly by a generator seeded VAL_SPLIT_SEED."""
    if not fraction:
        return torch.arange(n), torch.zeros(0, dtype=torch.int64)
    n_val = min(max(1, round(fraction * n)), n)
    order = torch.randperm(n, generator=torch.Generator().manual_seed(VAL_SPLIT_SEED))
    return order[n_val:].sort().values, order[:n_val].sort().values


def _val_fraction(ds: DictConfig) -> float:
    return float(ds.get("val_fraction", 0.0) or 0.0)  # configs of earlier versions have none


def _take(arrays: ImageArrays, indices: torch.Tensor) -> ImageArrays:
    return ImageArrays(arrays.images.index_select(0, indices), arrays.labels.index_select(0, indices))


def _take_folder(images, indices: torch.Tensor):
    """A FolderImages holding only `indices` of its samples (item i is then its i-th kept sample)."""
    subset = copy.copy(images)
    subset.samples = [images.samples[i] for i in indices.tolist()]
    return subset


def _in_memory(ds: DictConfig, seed: int):
    if ds.name == "fashion_mnist":
        train, test = load_fashion_mnist(ds.root, ds.download)
    elif ds.name in ("cifar10", "cifar100"):
        train, test = load_cifar(ds.name, ds.root, ds.download)
    elif ds.name == "synthetic":
        train, test = make_synthetic(ds.num_train, ds.num_test, ds.num_classes, ds.channels, ds.image_size, ds.noise, seed)
    else:
        return None
    return train.head(ds.limit_train), test.head(ds.limit_test)


def _num_classes(ds: DictConfig, found: int) -> int:
    """dataset.num_classes, or the number found in the data when it is null."""
    n = ds.num_classes
    if n is None:
        return found
    if isinstance(n, bool) or not isinstance(n, int):
        raise UserError(f"dataset.num_classes must be a whole number of classes, or null to count them (got {n!r}).")
    return n


def _check_classes(ds: DictConfig, n_train: int, distinct: list[int], largest: int, num_classes: int,
                   names: list[str] | None = None) -> None:
    """The training set needs two classes to learn from, and every label (train and test) must have a
    logit: labels 0 .. num_classes - 1. `distinct` holds up to two distinct training labels."""
    if not distinct:
        raise UserError(f"the {ds.name} training set is empty; a classifier needs samples of at least two classes.")
    if len(distinct) < 2:
        label = distinct[0]
        which = f"{label}, {names[label]}" if names else str(label)
        if ds.limit_train is not None and n_train == ds.limit_train:
            raise UserError(f"dataset.limit_train={ds.limit_train} leaves a single class (label {which}) in the "
                            f"{ds.name} training set; a classifier needs at least two, so raise dataset.limit_train.")
        fix = "put images into the other class folders" if names else "use the complete files"
        raise UserError(f"the {ds.name} training set holds a single class (label {which}); "
                        f"a classifier needs at least two, so {fix}.")
    if largest >= num_classes:
        raise UserError(f"dataset.num_classes={num_classes} is too small for {ds.name}: its labels go up to {largest}; "
                        f"set dataset.num_classes={largest + 1} or more.")


def _label_summary(labels: torch.Tensor) -> tuple[list[int], int]:
    """(up to two distinct labels, largest label) in one cheap pass over a CPU label tensor."""
    if labels.numel() == 0:
        return [], -1
    first = int(labels[0])
    differs = labels != first
    distinct = [first, int(labels[int(differs.byte().argmax())])] if bool(differs.any()) else [first]
    return distinct, int(labels.max())


def _check_arrays(ds: DictConfig, train: ImageArrays, test: ImageArrays) -> int:
    distinct, largest = _label_summary(train.labels)
    largest = max(largest, int(test.labels.max()) if len(test) else -1)
    num_classes = _num_classes(ds, largest + 1)
    _check_classes(ds, len(train), distinct, largest, num_classes)
    return num_classes


def _check_folders(ds: DictConfig, train_set, num_classes_found: int) -> int:
    """Folder labels are class_to_idx values (0 .. classes - 1); only the sampled subset needs a look."""
    labels = torch.tensor([y for _, y in train_set.samples], dtype=torch.int64)
    distinct, _ = _label_summary(labels)
    names = sorted(train_set.class_to_idx, key=train_set.class_to_idx.get)
    num_classes = _num_classes(ds, num_classes_found)
    _check_classes(ds, len(train_set), distinct, num_classes_found - 1, num_classes, names)
    return num_classes


def _cpu_augmentation(size: int, crop_padding: int, flip: bool):
    """The DataLoader path's equivalent of the device loader's crop and flip."""
    from torchvision.transforms import v2

    steps = [v2.RandomCrop(size, padding=crop_padding)] if crop_padding else []
    steps += [v2.RandomHorizontalFlip()] if flip else []
    return v2.Compose(steps) if steps else None


def build_data(ds: DictConfig, batch_size: int, eval_batch_size: int, num_workers: int,
               device: torch.device, channels_last: bool, seed: int, loader: str = "auto",
               augment_seed: int | None = None) -> DataBundle:
    """loader: auto (on the device for datasets that fit, a DataLoader for image folders), device,
    or dataloader (worker processes and CPU augmentation, also for in-memory datasets).
    `seed` makes synthetic data; `augment_seed` (default: seed) seeds the training augmentation."""
    augment_seed = seed if augment_seed is None else augment_seed
    normalize = Normalize(ds.mean, ds.std, ds.channels, device, channels_last)
    fraction = _val_fraction(ds)
    arrays = _in_memory(ds, seed)
    split = val_split(len(arrays[0]), fraction) if arrays is not None and fraction else (None, None)
    val_arrays = None
    if split[0] is not None:
        val_arrays = _take(arrays[0], split[1])
        arrays = (_take(arrays[0], split[0]), arrays[1])  # the strategies' N is what remains
    if arrays is not None:
        num_classes = _check_arrays(ds, *arrays)  # on the CPU, before the arrays move to the device
    if arrays is not None and loader == "dataloader":
        train, test = arrays
        augment = _cpu_augmentation(train.images.shape[-1], ds.augment.crop_padding, ds.augment.flip)
        return DataBundle(
            train=StreamLoader(ArrayImages(train, augment), batch_size, device, normalize, num_workers, augment_seed),
            train_eval=StreamLoader(ArrayImages(train), eval_batch_size, device, normalize, num_workers),
            test=StreamLoader(ArrayImages(test), eval_batch_size, device, normalize, num_workers),
            num_classes=num_classes,
            channels=ds.channels,
            image_size=ds.image_size,
            val=None if val_arrays is None else StreamLoader(ArrayImages(val_arrays), eval_batch_size, device,
                                                             normalize, num_workers),
            train_indices=split[0],
            val_indices=split[1],
        )
    if arrays is not None:
        train, test = arrays
        train_loader = DeviceLoader(train, batch_size, device, normalize, ds.augment.crop_padding, ds.augment.flip,
                                   augment_seed)
        same_images = ImageArrays(train_loader.images, train_loader.labels)  # already on the device: no copy
        return DataBundle(
            train=train_loader,
            train_eval=DeviceLoader(same_images, eval_batch_size, device, normalize),
            test=DeviceLoader(test, eval_batch_size, device, normalize),
            num_classes=num_classes,
            channels=ds.channels,
            image_size=ds.image_size,
            val=None if val_arrays is None else DeviceLoader(val_arrays, eval_batch_size, device, normalize),
            train_indices=split[0],
            val_indices=split[1],
        )
    train_set, train_eval_set, test_set, num_classes = load_folder_splits(
        ds.root, ds.train_dir, ds.test_dir, ds.image_size, ds.eval_resize, ds.augment.flip, ds.limit_train, ds.limit_test
    )
    val_set = train_indices = val_indices = None
    if fraction:
        train_indices, val_indices = val_split(len(train_set), fraction)
        val_set = _take_folder(train_eval_set, val_indices)  # evaluation transforms: no augmentation
        train_set, train_eval_set = _take_folder(train_set, train_indices), _take_folder(train_eval_set, train_indices)
    num_classes = _check_folders(ds, train_set, num_classes)
    return DataBundle(
        train=StreamLoader(train_set, batch_size, device, normalize, num_workers, augment_seed),
        train_eval=StreamLoader(train_eval_set, eval_batch_size, device, normalize, num_workers),
        test=StreamLoader(test_set, eval_batch_size, device, normalize, num_workers),
        num_classes=num_classes,
        channels=ds.channels,
        image_size=ds.image_size,
        val=None if val_set is None else StreamLoader(val_set, eval_batch_size, device, normalize, num_workers),
        train_indices=train_indices,
        val_indices=val_indices,
    )
