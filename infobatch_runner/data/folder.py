"""ImageNet-style class-per-folder trees (root/train/<class>/*.jpg, root/val/<class>/*.jpg).

Images are decoded by DataLoader workers and handed over as uint8 tensors; normalisation
happens on the training device, as for the in-memory datasets.
"""

from pathlib import Path

import torch
from PIL import Image, UnidentifiedImageError
from torch.utils.data import Dataset
from torchvision import transforms
from torchvision.datasets.folder import IMG_EXTENSIONS, default_loader, make_dataset

from infobatch_runner.data.messages import reason
from infobatch_runner.errors import UserError

# What PIL raises on a file that is not an image, is cut short or is damaged. UnidentifiedImageError
# and "image file is truncated" are OSErrors; some decoders raise SyntaxError or ValueError.
_CORRUPT_IMAGE = (OSError, SyntaxError, ValueError, Image.DecompressionBombError)


def find_classes(directory: Path) -> dict[str, int]:
    try:
        classes = sorted(d.name for d in directory.iterdir() if d.is_dir())
    except OSError as exc:
        raise UserError(f"cannot list {directory} ({reason(exc)}); check that it is a readable folder.") from None
    if not classes:
        raise UserError(f"{directory} holds no class folders; expected {directory}/<class>/<image>.")
    if len(classes) < 2:
        raise UserError(f"{directory} holds 1 class folder ({classes[0]}); a classifier needs at least two, "
                        f"one folder per class under {directory}/.")
    return {name: i for i, name in enumerate(classes)}


def _corrupt_reason(exc: BaseException) -> str:
    if isinstance(exc, UnidentifiedImageError):
        return "not an image PIL can identify"
    return reason(exc)


class FolderImages(Dataset):
    """One split of a folder tree; item i is (uint8 image tensor, label, i)."""

    def __init__(self, directory: Path, class_to_idx: dict[str, int], transform, limit: int | None = None):
        if not directory.is_dir():
            raise UserError(f"image folder {directory} does not exist; point dataset.root at a tree with train/ and val/.")
        samples = make_dataset(str(directory), class_to_idx, extensions=IMG_EXTENSIONS, allow_empty=True)
        if not samples:
            raise UserError(f"{directory} holds no images with a known extension ({', '.join(IMG_EXTENSIONS)}).")
        if limit is not None and limit < len(samples):
            # Files are sorted by class, so a head would drop whole classes: take a fixed random subset.
            keep = torch.randperm(len(samples), generator=torch.Generator().manual_seed(0))[:limit].sort().values
            samples = [samples[i] for i in keep.tolist()]
        self.samples = samples
        self.class_to_idx = class_to_idx
        self.transform = transform

    def __len__(self) -> int:
        return len(self.samples)

    def __getitem__(self, i: int):
        path, label = self.samples[i]
        try:
            image = default_loader(path)
        except _CORRUPT_IMAGE as exc:
            raise UserError(f"cannot read image {path} ({_corrupt_reason(exc)}); "
                            "replace or delete the corrupt file.") from None
        return self.transform(image), label, i


def folder_transforms(image_size: int, eval_resize: int, flip: bool):
    train = [transforms.RandomResizedCrop(image_size, antialias=True)]
    if flip:
        train.append(transforms.RandomHorizontalFlip())
    train.append(transforms.PILToTensor())
    test = [transforms.Resize(eval_resize, antialias=True), transforms.CenterCrop(image_size), transforms.PILToTensor()]
    return transforms.Compose(train), transforms.Compose(test)


def load_folder_splits(root: str, train_dir: str, test_dir: str, image_size: int, eval_resize: int, flip: bool,
                       limit_train: int | None, limit_test: int | None):
    """(train, train without augmentation, test, number of classes): classes from train/'s folders."""
    base = Path(root).expanduser()
    if not (base / train_dir).is_dir():
        raise UserError(
            f"no image folder tree at {base} (expected {base / train_dir}/<class>/<image>); point dataset.root at it."
        )
    class_to_idx = find_classes(base / train_dir)
    train_tf, test_tf = folder_transforms(image_size, eval_resize, flip)
    train = FolderImages(base / train_dir, class_to_idx, train_tf, limit_train)
    train_eval = FolderImages(base / train_dir, class_to_idx, test_tf, limit_train)
    test = FolderImages(base / test_dir, class_to_idx, test_tf, limit_test)
    return train, train_eval, test, len(class_to_idx)
