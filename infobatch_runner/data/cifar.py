"""CIFAR-10 and CIFAR-100 in the python-pickle batches that the authors and torchvision ship."""

import pickle
from pathlib import Path

import numpy as np
import torch

from infobatch_runner.data.arrays import ImageArrays
from infobatch_runner.data.messages import DOWNLOAD_ERRORS, one_line, reason
from infobatch_runner.errors import UserError

LAYOUT = {
    # name: (folder, train files, test files, label key)
    "cifar10": ("cifar-10-batches-py", [f"data_batch_{i}" for i in range(1, 6)], ["test_batch"], b"labels"),
    "cifar100": ("cifar-100-python", ["train"], ["test"], b"fine_labels"),
}
# What unpickling a damaged or foreign file can raise besides UnpicklingError.
_BAD_PICKLE = (pickle.UnpicklingError, EOFError, KeyError, ValueError, TypeError, AttributeError, ImportError,
               IndexError, OverflowError, MemoryError)


def _read_batch(path: Path, label_key: bytes) -> tuple[np.ndarray, np.ndarray]:
    try:
        with open(path, "rb") as f:
            batch = pickle.load(f, encoding="bytes")
        images = np.asarray(batch[b"data"], dtype=np.uint8).reshape(-1, 3, 32, 32)
        labels = np.asarray(batch[label_key], dtype=np.int64)
    except OSError as exc:
        raise UserError(f"cannot read {path} ({reason(exc)}); check that it is a readable file, "
                        "or replace it with the original.") from None
    except _BAD_PICKLE as exc:
        raise UserError(f"{path} is not a readable CIFAR batch ({type(exc).__name__}); replace it with the original.") from None
    if labels.ndim != 1 or labels.shape[0] != images.shape[0]:
        raise UserError(f"{path} holds {images.shape[0]} images but {labels.size} labels; replace it with the original.")
    if labels.size and labels.min() < 0:
        raise UserError(f"{path} holds a negative label ({labels.min()}); replace it with the original.")
    return images, labels


def _read_batches(files: list[Path], label_key: bytes) -> ImageArrays:
    pairs = [_read_batch(path, label_key) for path in files]
    images = np.concatenate([p[0] for p in pairs])
    labels = np.concatenate([p[1] for p in pairs])
    return ImageArrays(torch.from_numpy(images), torch.from_numpy(labels))


def _download(name: str, root: str) -> None:
    from torchvision.datasets import CIFAR10, CIFAR100

    dataset = CIFAR10 if name == "cifar10" else CIFAR100
    target = Path(root).expanduser()
    try:
        dataset(str(target), train=True, download=True)
    except DOWNLOAD_ERRORS as exc:
        folder = LAYOUT[name][0]
        raise UserError(
            f"the {name} download into dataset.root={target} failed ({one_line(exc)}); without network, "
            f"fetch {dataset.url} elsewhere and unpack it into {target} by hand, so that {target / folder}/ exists."
        ) from None


def load_cifar(name: str, root: str, download: bool) -> tuple[ImageArrays, ImageArrays]:
    folder, train_files, test_files, label_key = LAYOUT[name]
    base = Path(root).expanduser() / folder
    missing = [f for f in train_files + test_files if not (base / f).is_file()]
    if missing and download:
        _download(name, root)
        missing = [f for f in train_files + test_files if not (base / f).is_file()]
    if missing:
        raise UserError(
            f"{name} not found: {base} lacks {', '.join(missing)}; point dataset.root at the folder "
            f"that holds {folder}/, or add dataset.download=true."
        )
    train = _read_batches([base / f for f in train_files], label_key)
    test = _read_batches([base / f for f in test_files], label_key)
    return train, test
