import pytest
import torch
from omegaconf import OmegaConf

from infobatch_runner.engine.models import build_model
from infobatch_runner.errors import UserError

CASES = [
    (dict(name="cnn_small", width=8), 1, 28),
    (dict(name="resnet18", stem="auto"), 3, 32),
    (dict(name="resnet18", stem="auto"), 1, 28),
    (dict(name="resnet50", stem="auto"), 3, 32),
    (dict(name="resnet18", stem="auto"), 3, 96),
    (dict(name="timm", arch="resnet10t", pretrained=False), 3, 32),
]


@pytest.mark.parametrize("cfg,channels,size", CASES, ids=lambda c: str(c))
def test_models_build_and_classify(cfg, channels, size):
    model = build_model(OmegaConf.create(cfg), num_classes=7, channels=channels, image_size=size)
    out = model(torch.randn(2, channels, size, size))
    assert out.shape == (2, 7)


def test_resnet_stem_follows_image_size():
    small = build_model(OmegaConf.create(dict(name="resnet18", stem="auto")), 10, 3, 32)
    large = build_model(OmegaConf.create(dict(name="resnet18", stem="auto")), 10, 3, 224)
    forced = build_model(OmegaConf.create(dict(name="resnet18", stem="cifar")), 10, 3, 224)
    assert small.conv1.kernel_size == (3, 3) and small.conv1.stride == (1, 1) and isinstance(small.maxpool, torch.nn.Identity)
    assert large.conv1.kernel_size == (7, 7) and isinstance(large.maxpool, torch.nn.MaxPool2d)
    assert forced.conv1.kernel_size == (3, 3)


def test_unknown_timm_model_is_one_sentence():
    with pytest.raises(UserError, match="not a timm model"):
        build_model(OmegaConf.create(dict(name="timm", arch="no_such_net", pretrained=False)), 10, 3, 32)
