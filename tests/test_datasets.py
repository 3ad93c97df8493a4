"""Readers on small files written here in the real on-disk formats."""

import gzip
import pickle
import struct

import numpy as np
import pytest
import torch
from PIL import Image

from infobatch_runner.data import idx as idx_module
from infobatch_runner.data.cifar import load_cifar
from infobatch_runner.data.folder import load_folder_splits
from infobatch_runner.data.idx import DEBIAN_DIR, load_fashion_mnist, read_idx
from infobatch_runner.data.synthetic import make_synthetic
from infobatch_runner.errors import UserError


def write_idx(path, array: np.ndarray, compress: bool):
    header = struct.pack(">BBBB", 0, 0, 0x08, array.ndim) + struct.pack(f">{array.ndim}I", *array.shape)
    payload = header + array.astype(np.uint8).tobytes()
    if compress:
        with gzip.open(path, "wb") as f:
            f.write(payload)
    else:
        path.write_bytes(payload)


def write_fashion_mnist(root, n_train=12, n_test=5, compress=True):
    rng = np.random.default_rng(0)
    data = {}
    for split, n in (("train", n_train), ("t10k", n_test)):
        images = rng.integers(0, 256, (n, 28, 28), dtype=np.uint8)
        labels = rng.integers(0, 10, n, dtype=np.uint8)
        suffix = ".gz" if compress else ""
        write_idx(root / f"{split}-images-idx3-ubyte{suffix}", images, compress)
        write_idx(root / f"{split}-labels-idx1-ubyte{suffix}", labels, compress)
        data[split] = (images, labels)
    return data


@pytest.mark.parametrize("compress", [True, False])
def test_fashion_mnist_idx(tmp_path, compress):
    data = write_fashion_mnist(tmp_path, compress=compress)
    train, test = load_fashion_mnist(str(tmp_path), download=False)
    assert train.images.shape == (12, 1, 28, 28) and test.images.shape == (5, 1, 28, 28)
    assert train.images.dtype == torch.uint8 and train.labels.dtype == torch.int64
    assert np.array_equal(train.images[:, 0].numpy(), data["train"][0])
    assert np.array_equal(test.labels.numpy(), data["t10k"][1])


def test_truncated_idx_is_one_sentence(tmp_path):
    write_fashion_mnist(tmp_path, compress=False)
    path = tmp_path / "train-images-idx3-ubyte"
    path.write_bytes(path.read_bytes()[:-100])
    with pytest.raises(UserError, match="truncated"):
        read_idx(path)


def test_missing_fashion_mnist_says_where_it_looked(tmp_path, monkeypatch):
    monkeypatch.setattr(idx_module, "DEBIAN_DIR", tmp_path / "no-debian")
    with pytest.raises(UserError) as err:
        load_fashion_mnist(str(tmp_path / "nowhere"), download=False)
    message = str(err.value)
    assert "nowhere" in message and "dataset-fashion-mnist" in message and "dataset.download=true" in message


@pytest.mark.skipif(not DEBIAN_DIR.is_dir(), reason="Debian's dataset-fashion-mnist is not installed")
def test_debian_fashion_mnist_is_the_default():
    train, test = load_fashion_mnist(None, download=False)
    assert train.images.shape == (60000, 1, 28, 28) and test.images.shape == (10000, 1, 28, 28)
    assert sorted(train.labels.unique().tolist()) == list(range(10))


def cifar_batch(n, rng, label_key):
    images = rng.integers(0, 256, (n, 3, 32, 32), dtype=np.uint8)
    labels = rng.integers(0, 10, n).tolist()
    batch = {b"batch_label": b"test", label_key: labels, b"data": images.reshape(n, 3072), b"filenames": [b"x.png"] * n}
    return batch, images, labels


def test_cifar10_pickled_batches(tmp_path):
    rng = np.random.default_rng(0)
    folder = tmp_path / "cifar-10-batches-py"
    folder.mkdir()
    expected_images, expected_labels = [], []
    for name in [f"data_batch_{i}" for i in range(1, 6)] + ["test_batch"]:
        batch, images, labels = cifar_batch(4, rng, b"labels")
        (folder / name).write_bytes(pickle.dumps(batch, protocol=2))
        expected_images.append(images)
        expected_labels.append(labels)
    train, test = load_cifar("cifar10", str(tmp_path), download=False)
    assert train.images.shape == (20, 3, 32, 32) and test.images.shape == (4, 3, 32, 32)
    assert np.array_equal(train.images.numpy(), np.concatenate(expected_images[:5]))
    assert test.labels.tolist() == expected_labels[5]


def test_cifar100_uses_fine_labels(tmp_path):
    rng = np.random.default_rng(1)
    folder = tmp_path / "cifar-100-python"
    folder.mkdir()
    for name, n in (("train", 6), ("test", 3)):
        batch, _, labels = cifar_batch(n, rng, b"fine_labels")
        batch[b"coarse_labels"] = [0] * n
        (folder / name).write_bytes(pickle.dumps(batch))
        if name == "test":
            expected = labels
    train, test = load_cifar("cifar100", str(tmp_path), download=False)
    assert len(train) == 6 and test.labels.tolist() == expected


def test_missing_cifar_names_the_files(tmp_path):
    with pytest.raises(UserError, match="data_batch_1.*dataset.download=true"):
        load_cifar("cifar10", str(tmp_path), download=False)


def test_corrupt_cifar_batch_is_one_sentence(tmp_path):
    folder = tmp_path / "cifar-100-python"
    folder.mkdir()
    (folder / "train").write_bytes(b"not a pickle")
    (folder / "test").write_bytes(b"not a pickle")
    with pytest.raises(UserError, match="not a readable CIFAR batch"):
        load_cifar("cifar100", str(tmp_path), download=False)


def write_image_tree(root, classes=("cat", "dog", "fox"), per_class=3, size=40):
    rng = np.random.default_rng(0)
    for split in ("train", "val"):
        for c in classes:
            (root / split / c).mkdir(parents=True)
            for i in range(per_class):
                pixels = rng.integers(0, 256, (size, size + 7, 3), dtype=np.uint8)
                ext = "png" if i % 2 else "JPEG"
                Image.fromarray(pixels).save(root / split / c / f"{c}_{i}.{ext}")


def test_image_folder_tree(tmp_path):
    write_image_tree(tmp_path)
    train, _, test, num_classes = load_folder_splits(str(tmp_path), "train", "val", image_size=24, eval_resize=28,
                                                  flip=True, limit_train=None, limit_test=None)
    assert num_classes == 3 and len(train) == 9 and len(test) == 9
    x, y, i = train[4]
    assert x.dtype == torch.uint8 and x.shape == (3, 24, 24)
    assert (y, i) == (1, 4) and train.samples[4][0].endswith("dog_1.png")
    x, _, _ = test[0]
    assert x.shape == (3, 24, 24)


def test_image_folder_limit_keeps_every_class(tmp_path):
    write_image_tree(tmp_path, per_class=4)
    train, _, _, _ = load_folder_splits(str(tmp_path), "train", "val", 24, 28, False, limit_train=6, limit_test=None)
    assert len(train) == 6 and len({y for _, y in train.samples}) > 1


def test_missing_image_tree_is_one_sentence(tmp_path):
    with pytest.raises(UserError, match="no image folder tree"):
        load_folder_splits(str(tmp_path), "train", "val", 24, 28, False, None, None)


def test_synthetic_is_deterministic_and_learnable_shape():
    a_train, a_test = make_synthetic(64, 16, 4, 3, 16, 0.5, seed=0)
    b_train, _ = make_synthetic(64, 16, 4, 3, 16, 0.5, seed=0)
    c_train, _ = make_synthetic(64, 16, 4, 3, 16, 0.5, seed=1)
    assert a_train.images.shape == (64, 3, 16, 16) and a_test.images.shape == (16, 3, 16, 16)
    assert torch.equal(a_train.images, b_train.images) and not torch.equal(a_train.images, c_train.images)
    # Same-class images are closer to each other than to other classes: there is a signal to learn.
    x = a_train.images.float().flatten(1)
    centroids = torch.stack([x[a_train.labels == k].mean(0) for k in range(4)])
    nearest = torch.cdist(x, centroids).argmin(1)
    assert (nearest == a_train.labels).float().mean() > 0.9
