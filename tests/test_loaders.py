"""Loaders hand each batch the images, labels, sample indices and weights of the plan, in order."""

import torch

from infobatch_runner.data.arrays import ImageArrays
from infobatch_runner.data.folder import load_folder_splits
from infobatch_runner.data.loaders import DeviceLoader, Normalize, StreamLoader, random_crop
from infobatch_runner.pruning.base import Plan

from test_datasets import write_image_tree


def arrays(n=50, c=3, size=8):
    g = torch.Generator().manual_seed(0)
    return ImageArrays(torch.randint(0, 256, (n, c, size, size), dtype=torch.uint8, generator=g), torch.arange(n) % 7)


def a_plan(n, k):
    g = torch.Generator().manual_seed(3)
    indices = torch.randperm(n, generator=g)[:k]
    return Plan(indices, torch.rand(k, generator=g) + 0.5)


def test_device_loader_batches_follow_the_plan():
    data = arrays()
    norm = Normalize([0.5], [0.25], 3, torch.device("cpu"), channels_last=False)
    loader = DeviceLoader(data, batch_size=8, device=torch.device("cpu"), normalize=norm)
    plan = a_plan(50, 29)
    batches = list(loader.iterate(plan.indices, plan.weights))
    assert len(batches) == loader.num_batches(len(plan)) == 4
    assert torch.equal(torch.cat([b.idx for b in batches]), plan.indices)
    assert torch.equal(torch.cat([b.w for b in batches]), plan.weights)
    for b in batches:
        assert torch.equal(b.y, data.labels[b.idx])
        expected = (data.images[b.idx].float() / 255 - 0.5) / 0.25
        assert torch.allclose(b.x, expected, atol=1e-5)


def test_normalize_per_channel_and_channels_last():
    norm = Normalize([0.1, 0.2, 0.3], [0.5, 0.5, 0.5], 3, torch.device("cpu"), channels_last=True)
    x = torch.full((2, 3, 4, 4), 255, dtype=torch.uint8)
    out = norm(x)
    assert out.is_contiguous(memory_format=torch.channels_last)
    assert torch.allclose(out[0, :, 0, 0], torch.tensor([1.8, 1.6, 1.4]))


def test_random_crop_is_a_shifted_window_of_the_padded_image():
    x = torch.arange(2 * 1 * 6 * 6, dtype=torch.uint8).reshape(2, 1, 6, 6)
    out = random_crop(x, 2, torch.Generator().manual_seed(0))
    padded = torch.nn.functional.pad(x, (2, 2, 2, 2))
    assert out.shape == x.shape
    for b in range(2):
        windows = [padded[b, :, dy : dy + 6, dx : dx + 6] for dy in range(5) for dx in range(5)]
        assert any(torch.equal(out[b], w) for w in windows)


def test_augmented_batches_keep_labels_and_indices():
    data = arrays(n=20, size=8)
    norm = Normalize([0.5], [0.25], 3, torch.device("cpu"), channels_last=False)
    loader = DeviceLoader(data, 6, torch.device("cpu"), norm, crop_padding=2, flip=True, seed=1)
    plan = a_plan(20, 20)
    batches = list(loader.iterate(plan.indices, plan.weights))
    assert torch.equal(torch.cat([b.idx for b in batches]), plan.indices)
    assert all(torch.equal(b.y, data.labels[b.idx]) for b in batches)
    assert batches[0].x.shape == (6, 3, 8, 8)


def test_stream_loader_length_and_indices_follow_each_new_plan(tmp_path):
    write_image_tree(tmp_path, per_class=4)
    train, _, _, _ = load_folder_splits(str(tmp_path), "train", "val", 16, 20, False, None, None)
    norm = Normalize([0.5], [0.25], 3, torch.device("cpu"), channels_last=False)
    loader = StreamLoader(train, batch_size=5, device=torch.device("cpu"), normalize=norm, num_workers=0)
    for k in (12, 7):  # the second, shorter plan must not report the first one's length
        plan = a_plan(12, k)
        batches = list(loader.iterate(plan.indices, plan.weights))
        assert len(batches) == loader.num_batches(k) == len(loader.sampler)
        assert torch.equal(torch.cat([b.idx for b in batches]), plan.indices)
        assert torch.equal(torch.cat([b.w for b in batches]), plan.weights)
        for b in batches:
            assert b.y.tolist() == [train.samples[i][1] for i in b.idx.tolist()]
            assert b.x.shape[1:] == (3, 16, 16) and b.x.dtype == torch.float32


def test_dataloader_path_for_in_memory_arrays_carries_the_same_samples(compose_cfg):
    from infobatch_runner.data.build import build_data

    cfg = compose_cfg(["dataset=synthetic", "dataset.num_train=40", "dataset.num_test=8", "dataset.image_size=8",
                       "dataset.augment.crop_padding=2", "dataset.augment.flip=true"])
    dev = torch.device("cpu")
    streamed = build_data(cfg.dataset, 16, 16, 0, dev, False, 0, loader="dataloader")
    resident = build_data(cfg.dataset, 16, 16, 0, dev, False, 0, loader="auto")
    assert isinstance(streamed.train, StreamLoader) and isinstance(resident.train, DeviceLoader)
    plan = a_plan(40, 25)
    got = list(streamed.train.iterate(plan.indices, plan.weights))
    assert torch.equal(torch.cat([b.idx for b in got]), plan.indices)
    assert torch.equal(torch.cat([b.y for b in got]), resident.train.labels[plan.indices])
    assert got[0].x.shape == (16, 3, 8, 8)


def test_a_small_remainder_is_shared_with_the_batch_before_it():
    from infobatch_runner.data.loaders import batch_starts

    assert batch_starts(17, 8) == [0, 8, 13]  # 8 + 5 + 4, not 8 + 8 + 1: never a batch of one
    assert batch_starts(19, 8) == [0, 8, 14]  # a remainder of 3 < 4: its 11 samples as 6 + 5
    assert batch_starts(20, 8) == [0, 8, 16]  # a remainder of half a batch trains alone
    assert batch_starts(24, 8) == [0, 8, 16]
    assert batch_starts(1, 8) == [0] and batch_starts(3, 8) == [0]  # one batch: nothing to share with
    assert batch_starts(5, 2) == [0, 2]  # 2 + 3: never a batch of one
    assert batch_starts(0, 8) == []
    for n in range(8, 200):
        starts = batch_starts(n, 8)
        sizes = [b - a for a, b in zip(starts, starts[1:] + [n])]
        assert sum(sizes) == n and len(sizes) == -(-n // 8) and 4 <= min(sizes) and max(sizes) <= 8, n
    data = arrays(n=17)
    norm = Normalize([0.5], [0.25], 3, torch.device("cpu"), channels_last=False)
    loader = DeviceLoader(data, 8, torch.device("cpu"), norm)
    plan = a_plan(17, 17)
    sizes = [b.idx.shape[0] for b in loader.iterate(plan.indices, plan.weights)]
    assert sizes == [8, 5, 4] and loader.num_batches(17) == 3
