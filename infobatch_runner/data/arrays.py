"""The in-memory form of a small dataset: uint8 images (N, C, H, W) and int64 labels."""

from dataclasses import dataclass

import torch
import torch.utils.data


@dataclass
class ImageArrays:
    images: torch.Tensor  # uint8, (N, C, H, W)
    labels: torch.Tensor  # int64, (N,)

    def __post_init__(self):
        if self.images.dtype != torch.uint8 or self.images.dim() != 4:
            raise ValueError("images must be a uint8 tensor of shape (N, C, H, W)")
        if self.labels.shape != (self.images.shape[0],):
            raise ValueError("labels must have one entry per image")
        self.labels = self.labels.long()

    def __len__(self) -> int:
        return self.images.shape[0]

    def head(self, limit: int | None) -> "ImageArrays":
        """The first `limit` samples (the files are already shuffled), or all when limit is None."""
        if limit is None or limit >= len(self):
            return self
        return ImageArrays(self.images[:limit], self.labels[:limit])


class ArrayImages(torch.utils.data.Dataset):
    """In-memory arrays served item by item, for the DataLoader path (trainer.loader=dataloader):
    item i is (uint8 image, label, i), augmented on the CPU by `transform`."""

    def __init__(self, arrays: ImageArrays, transform=None):
        self.arrays = arrays
        self.transform = transform

    def __len__(self) -> int:
        return len(self.arrays)

    def __getitem__(self, i: int):
        image = self.arrays.images[i]
        return (self.transform(image) if self.transform else image), int(self.arrays.labels[i]), i
