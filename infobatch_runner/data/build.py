"""From cfg.dataset to a pair of plan-driven loaders on the training device."""

from dataclasses import dataclass

import torch
from omegaconf import DictConfig

from infobatch_runner.data.arrays import ArrayImages, ImageArrays
from infobatch_runner.data.cifar import load_cifar
from infobatch_runner.data.folder import load_folder_splits
from infobatch_runner.data.idx import load_fashion_mnist
from infobatch_runner.data.loaders import DeviceLoader, Normalize, StreamLoader
from infobatch_runner.data.synthetic import make_synthetic


@dataclass
class DataBundle:
    train: DeviceLoader | StreamLoader
    train_eval: DeviceLoader | StreamLoader  # the training set without augmentation, for scoring
    test: DeviceLoader | StreamLoader
    num_classes: int
    channels: int
    image_size: int


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


def _cpu_augmentation(size: int, crop_padding: int, flip: bool):
    """The DataLoader path's equivalent of the device loader's crop and flip."""
    from torchvision.transforms import v2

    steps = [v2.RandomCrop(size, padding=crop_padding)] if crop_padding else []
    steps += [v2.RandomHorizontalFlip()] if flip else []
    return v2.Compose(steps) if steps else None


def build_data(ds: DictConfig, batch_size: int, eval_batch_size: int, num_workers: int,
               device: torch.device, channels_last: bool, seed: int, loader: str = "auto") -> DataBundle:
    """loader: auto (on the device for datasets that fit, a DataLoader for image folders), device,
    or dataloader (worker processes and CPU augmentation, also for in-memory datasets)."""
    normalize = Normalize(ds.mean, ds.std, ds.channels, device, channels_last)
    arrays = _in_memory(ds, seed)
    if arrays is not None and loader == "dataloader":
        train, test = arrays
        augment = _cpu_augmentation(train.images.shape[-1], ds.augment.crop_padding, ds.augment.flip)
        return DataBundle(
            train=StreamLoader(ArrayImages(train, augment), batch_size, device, normalize, num_workers),
            train_eval=StreamLoader(ArrayImages(train), eval_batch_size, device, normalize, num_workers),
            test=StreamLoader(ArrayImages(test), eval_batch_size, device, normalize, num_workers),
            num_classes=ds.num_classes,
            channels=ds.channels,
            image_size=ds.image_size,
        )
    if arrays is not None:
        train, test = arrays
        train_loader = DeviceLoader(train, batch_size, device, normalize, ds.augment.crop_padding, ds.augment.flip, seed)
        same_images = ImageArrays(train_loader.images, train_loader.labels)  # already on the device: no copy
        return DataBundle(
            train=train_loader,
            train_eval=DeviceLoader(same_images, eval_batch_size, device, normalize),
            test=DeviceLoader(test, eval_batch_size, device, normalize),
            num_classes=ds.num_classes,
            channels=ds.channels,
            image_size=ds.image_size,
        )
    train_set, train_eval_set, test_set, num_classes = load_folder_splits(
        ds.root, ds.train_dir, ds.test_dir, ds.image_size, ds.eval_resize, ds.augment.flip, ds.limit_train, ds.limit_test
    )
    return DataBundle(
        train=StreamLoader(train_set, batch_size, device, normalize, num_workers),
        train_eval=StreamLoader(train_eval_set, eval_batch_size, device, normalize, num_workers),
        test=StreamLoader(test_set, eval_batch_size, device, normalize, num_workers),
        num_classes=ds.num_classes or num_classes,
        channels=ds.channels,
        image_size=ds.image_size,
    )
