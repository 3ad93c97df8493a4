"""Learnable random images: a fixed random prototype per class plus per-sample noise, as uint8.

Prototypes are coarse (a 4x4 random pattern upsampled to the image size), so the class signal
is spatial structure that a small CNN picks up within an epoch or two: the whole pipeline gets
a real training curve without any file on disk.
"""

import os

import torch
import torch.nn.functional as F

from infobatch_runner.data.arrays import ImageArrays
from infobatch_runner.errors import UserError


def peak_bytes(num_train: int, num_test: int, num_classes: int, channels: int, image_size: int) -> int:
    """The memory make_synthetic needs at its peak: both uint8 splits, the float32 prototypes, and
    three float32 temporaries of the larger split while it is drawn."""
    pixels = channels * image_size * image_size
    return (num_train + num_test) * pixels + 4 * num_classes * pixels + 12 * max(num_train, num_test) * pixels


def available_bytes() -> int | None:
    """Memory this machine can still hand out (Linux's MemAvailable, else free pages), or None where
    it cannot tell."""
    try:
        for line in open("/proc/meminfo"):
            if line.startswith("MemAvailable:"):
                return int(line.split()[1]) * 1024
    except (OSError, ValueError, IndexError):
        pass
    try:
        return os.sysconf("SC_AVPHYS_PAGES") * os.sysconf("SC_PAGE_SIZE")
    except (ValueError, OSError, AttributeError):
        return None


def check_fits(num_train: int, num_test: int, num_classes: int, channels: int, image_size: int) -> None:
    """Refuse, before anything is allocated, synthetic data larger than the free memory."""
    need, free = peak_bytes(num_train, num_test, num_classes, channels, image_size), available_bytes()
    if free is not None and need > free:
        raise UserError(f"dataset.image_size={image_size} needs {need / 2**30:.1f} GiB of memory for "
                        f"{num_train + num_test} synthetic images of {channels}x{image_size}x{image_size}, and "
                        f"{free / 2**30:.1f} GiB are free; lower dataset.image_size or dataset.num_train.")


def make_synthetic(
    num_train: int, num_test: int, num_classes: int, channels: int, image_size: int, noise: float, seed: int
) -> tuple[ImageArrays, ImageArrays]:
    check_fits(num_train, num_test, num_classes, channels, image_size)
    gen = torch.Generator().manual_seed((10_007 * seed + 17) % 2**64)  # any seed the config takes
    coarse = torch.rand(num_classes, channels, 4, 4, generator=gen)
    prototypes = F.interpolate(coarse, size=(image_size, image_size), mode="bilinear", align_corners=False)

    def split(n: int) -> ImageArrays:
        labels = torch.randint(num_classes, (n,), generator=gen)
        images = prototypes[labels] + noise * torch.randn(n, channels, image_size, image_size, generator=gen)
        return ImageArrays((images.clamp(0, 1) * 255).round().to(torch.uint8), labels)

    return split(num_train), split(num_test)
