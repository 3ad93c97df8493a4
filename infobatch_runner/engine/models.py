"""Image classifiers: a small CNN, CIFAR- or ImageNet-stem ResNets, and any timm model by name.

Every model ends in a linear classifier (`get_classifier()` for timm, `.fc` for ours), which
is what last-layer scores such as GraNd's closed form need.
"""

import torch
import torch.nn as nn
import torchvision

from infobatch_runner.errors import UserError

SMALL_IMAGE_PX = 64  # below this, ResNets use the CIFAR stem (3x3 stride-1 conv, no max-pool)


def _conv_bn_relu(cin: int, cout: int) -> nn.Sequential:
    return nn.Sequential(nn.Conv2d(cin, cout, 3, padding=1, bias=False), nn.BatchNorm2d(cout), nn.ReLU(inplace=True))


class SmallCNN(nn.Module):
    """Three conv-BN-ReLU stages (width, 2x, 4x) with max-pooling, then a linear classifier."""

    def __init__(self, channels: int, num_classes: int, width: int = 16):
        super().__init__()
        self.features = nn.Sequential(
            _conv_bn_relu(channels, width), nn.MaxPool2d(2),
            _conv_bn_relu(width, 2 * width), nn.MaxPool2d(2),
            _conv_bn_relu(2 * width, 4 * width), nn.AdaptiveMaxPool2d(1), nn.Flatten(),
        )
        self.fc = nn.Linear(4 * width, num_classes)

    def forward(self, x):
        return self.fc(self.features(x))


def _resnet(arch: str, stem: str, channels: int, num_classes: int, image_size: int) -> nn.Module:
    if stem not in ("auto", "cifar", "imagenet"):
        raise UserError(f"model.stem must be auto, cifar or imagenet (got {stem!r}).")
    model = getattr(torchvision.models, arch)(weights=None, num_classes=num_classes)
    if stem == "cifar" or (stem == "auto" and image_size < SMALL_IMAGE_PX):
        model.conv1 = nn.Conv2d(channels, 64, kernel_size=3, stride=1, padding=1, bias=False)
        model.maxpool = nn.Identity()
    elif channels != 3:
        model.conv1 = nn.Conv2d(channels, 64, kernel_size=7, stride=2, padding=3, bias=False)
    return model


def _timm(arch: str, pretrained: bool, channels: int, num_classes: int, image_size: int) -> nn.Module:
    import timm

    if not timm.is_model(arch):
        raise UserError(f"model.arch={arch!r} is not a timm model; list them with `python -c \"import timm; print(timm.list_models())\"`.")
    try:
        model = timm.create_model(arch, pretrained=pretrained, num_classes=num_classes, in_chans=channels)
    except (OSError, RuntimeError) as exc:
        raise UserError(f"timm could not create {arch!r} (pretrained={pretrained}): {str(exc).splitlines()[0]}") from None
    _check_input_size(model, arch, channels, image_size)
    return model


def _check_input_size(model: nn.Module, arch: str, channels: int, image_size: int) -> None:
    """One forward on a zeros batch of 2, on the CPU, in eval mode: a timm model that cannot take the
    dataset's images (a ViT's patch embedding asserts on its input size) fails here, in one sentence,
    rather than at the first training step. The model's mode is restored; nothing is learned."""
    was_training = model.training
    model.eval()
    try:
        with torch.no_grad():
            model(torch.zeros(2, channels, image_size, image_size))
    except Exception as exc:  # noqa: BLE001 - any failure of the forward means the same to the user
        lines = [line.strip() for line in str(exc).splitlines() if line.strip()]
        reason = (lines[0] if lines else type(exc).__name__).rstrip(".")
        raise UserError(f"model.arch={arch} cannot take {channels}x{image_size}x{image_size} images ({reason}); "
                        f"choose another model or dataset.image_size.") from None
    finally:
        model.train(was_training)


MODELS = ("cnn_small", "resnet18", "resnet50", "timm")


def build_model(cfg, num_classes: int, channels: int, image_size: int) -> nn.Module:
    if cfg.name == "cnn_small":
        return SmallCNN(channels, num_classes, cfg.width)
    if cfg.name in ("resnet18", "resnet50"):
        return _resnet(cfg.name, cfg.stem, channels, num_classes, image_size)
    if cfg.name == "timm":
        return _timm(cfg.arch, cfg.pretrained, channels, num_classes, image_size)
    raise UserError(f"model.name={cfg.name!r} is unknown; choose one of {', '.join(MODELS)}.")
