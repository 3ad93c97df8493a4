"""Learnable random images: a fixed random prototype per class plus per-sample noise, as uint8.

Prototypes are coarse (a 4x4 random pattern upsampled to the image size), so the class signal
is spatial structure that a small CNN picks up within an epoch or two: the whole pipeline gets
a real training curve without any file on disk.
"""

import torch
import torch.nn.functional as F

from infobatch_runner.data.arrays import ImageArrays


def make_synthetic(
    num_train: int, num_test: int, num_classes: int, channels: int, image_size: int, noise: float, seed: int
) -> tuple[ImageArrays, ImageArrays]:
    gen = torch.Generator().manual_seed(10_007 * seed + 17)
    coarse = torch.rand(num_classes, channels, 4, 4, generator=gen)
    prototypes = F.interpolate(coarse, size=(image_size, image_size), mode="bilinear", align_corners=False)

    def split(n: int) -> ImageArrays:
        labels = torch.randint(num_classes, (n,), generator=gen)
        images = prototypes[labels] + noise * torch.randn(n, channels, image_size, image_size, generator=gen)
        return ImageArrays((images.clamp(0, 1) * 255).round().to(torch.uint8), labels)

    return split(num_train), split(num_test)
