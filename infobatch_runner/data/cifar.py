"""CIFAR-10 and CIFAR-100 in the python-pickle batches that the authors and torchvision ship."""

import pickle
from pathlib import Path

import numpy as np
import torch

from infobatch_runner.data.arrays import ImageArrays
from infobatch_runner.errors import UserError

LAYOUT = {
    # name: (folder, train files, test files, label key)
    "cifar10": ("cifar-10-batches-py", [f"data_batch_{i}" for i in range(1, 6)], ["test_batch"], b"labels"),
    "cifar100": ("cifar-100-python", ["train"], ["test"], b"fine_labels"),
}


def _read_batches(files: list[Path], label_key: bytes) -> ImageArrays:
    images, labels = [], []
    for path in files:
        try:
            with open(path, "rb") as f:
                batch = pickle.load(f, encoding="bytes")
            data = np.asarray(batch[b"data"], dtype=np.uint8).reshape(-1, 3, 32, 32)
            images.append(data)
            labels.append(np.asarray(batch[label_key], dtype=np.int64))
        except (pickle.UnpicklingError, EOFError, KeyError, ValueError, TypeError) as exc:
            raise UserError(f"{path} is not a readable CIFAR batch ({type(exc).__name__}); replace it with the original.") from None
    return ImageArrays(torch.from_numpy(np.concatenate(images)), torch.from_numpy(np.concatenate(labels)))


def load_cifar(name: str, root: str, download: bool) -> tuple[ImageArrays, ImageArrays]:
    folder, train_files, test_files, label_key = LAYOUT[name]
    base = Path(root).expanduser() / folder
    missing = [f for f in train_files + test_files if not (base / f).is_file()]
    if missing and download:
        from torchvision.datasets import CIFAR10, CIFAR100

        (CIFAR10 if name == "cifar10" else CIFAR100)(str(Path(root).expanduser()), train=True, download=True)
        missing = [f for f in train_files + test_files if not (base / f).is_file()]
    if missing:
        raise UserError(
            f"{name} not found: {base} lacks {', '.join(missing)}; point dataset.root at the folder "
            f"that holds {folder}/, or add dataset.download=true."
        )
    train = _read_batches([base / f for f in train_files], label_key)
    test = _read_batches([base / f for f in test_files], label_key)
    return train, test
