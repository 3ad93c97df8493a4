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


# ---------------------------------------------------------------------------------------------
# Every bad input ends in one UserError sentence that names the file or the config key.


def one_sentence(excinfo, *names):
    message = str(excinfo.value)
    assert excinfo.type is UserError
    assert "\n" not in message and "Traceback" not in message, message
    for name in names:
        assert str(name) in message, (name, message)
    return message


def test_truncated_gz_idx_is_one_sentence(tmp_path):
    write_fashion_mnist(tmp_path)
    path = tmp_path / "train-images-idx3-ubyte.gz"
    path.write_bytes(path.read_bytes()[: path.stat().st_size // 2])
    with pytest.raises(UserError) as err:
        load_fashion_mnist(str(tmp_path), download=False)
    assert "truncated or corrupt gzip" in one_sentence(err, path)


def test_gz_idx_that_is_not_gzip_is_one_sentence(tmp_path):
    write_fashion_mnist(tmp_path)
    path = tmp_path / "t10k-labels-idx1-ubyte.gz"
    path.write_bytes(b"<html>404 Not Found</html>\n" * 4)
    with pytest.raises(UserError) as err:
        load_fashion_mnist(str(tmp_path), download=False)
    assert "not gzip-compressed" in one_sentence(err, path, "replace it")


@pytest.mark.parametrize("compress", [True, False])
def test_idx_header_shorter_than_its_dimensions_is_one_sentence(tmp_path, compress):
    path = tmp_path / ("train-images-idx3-ubyte" + (".gz" if compress else ""))
    payload = struct.pack(">BBBB", 0, 0, 0x08, 3) + struct.pack(">I", 60000)  # 1 of 3 sizes
    if compress:
        with gzip.open(path, "wb") as f:
            f.write(payload)
    else:
        path.write_bytes(payload)
    with pytest.raises(UserError) as err:
        read_idx(path)
    assert "truncated" in one_sentence(err, path, "3 dimensions")


def test_idx_with_surplus_values_is_one_sentence(tmp_path):
    path = tmp_path / "train-labels-idx1-ubyte"
    write_idx(path, np.arange(5, dtype=np.uint8), compress=False)
    path.write_bytes(path.read_bytes() + b"\x00\x01")
    with pytest.raises(UserError) as err:
        read_idx(path)
    one_sentence(err, path, "7 values", "declares 5")


def test_unreadable_idx_path_is_one_sentence(tmp_path):
    for name in ("train-images-idx3-ubyte.gz", "train-images-idx3-ubyte"):
        path = tmp_path / name
        path.mkdir()  # a directory named like the file: open() fails with an OSError
        with pytest.raises(UserError) as err:
            read_idx(path)
        assert "cannot read" in one_sentence(err, path, "Is a directory")


OFFLINE = "http://127.0.0.1:9"  # nothing listens on the discard port: urllib fails at once


@pytest.fixture
def offline(monkeypatch):
    for var in ("http_proxy", "https_proxy", "HTTP_PROXY", "HTTPS_PROXY"):
        monkeypatch.setenv(var, OFFLINE)
    monkeypatch.delenv("no_proxy", raising=False)
    monkeypatch.delenv("NO_PROXY", raising=False)
    monkeypatch.setattr(idx_module, "DEBIAN_DIR", idx_module.DEBIAN_DIR.parent / "no-such-fashion-mnist")


@pytest.mark.parametrize("name", ["fashion_mnist", "cifar10", "cifar100"])
def test_download_without_network_is_one_sentence(tmp_path, offline, name):
    import time

    root = tmp_path / "data"
    start = time.monotonic()
    with pytest.raises(UserError) as err:
        if name == "fashion_mnist":
            load_fashion_mnist(str(root), download=True)
        else:
            load_cifar(name, str(root), download=True)
    assert time.monotonic() - start < 60  # fails fast, no retry loop
    message = one_sentence(err, name, f"dataset.root={root}", "download", "failed", "by hand")
    assert "Connection refused" in message or "urlopen error" in message


def test_download_without_network_through_build_data(tmp_path, offline, compose_cfg):
    from infobatch_runner.data.build import build_data

    cfg = compose_cfg(["dataset=fashion_mnist", f"dataset.root={tmp_path}", "dataset.download=true"])
    with pytest.raises(UserError) as err:
        build_data(cfg.dataset, 8, 8, 0, torch.device("cpu"), False, 0)
    one_sentence(err, "fashion_mnist", f"dataset.root={tmp_path}", "failed")


def write_cifar10(root, n=4):
    rng = np.random.default_rng(0)
    folder = root / "cifar-10-batches-py"
    folder.mkdir()
    for name in [f"data_batch_{i}" for i in range(1, 6)] + ["test_batch"]:
        batch, _, _ = cifar_batch(n, rng, b"labels")
        (folder / name).write_bytes(pickle.dumps(batch, protocol=2))
    return folder


def test_cifar_labels_that_do_not_match_the_images_are_one_sentence(tmp_path):
    folder = write_cifar10(tmp_path)
    batch = pickle.loads((folder / "data_batch_3").read_bytes(), encoding="bytes")
    batch[b"labels"] = batch[b"labels"][:-1]
    (folder / "data_batch_3").write_bytes(pickle.dumps(batch, protocol=2))
    with pytest.raises(UserError) as err:
        load_cifar("cifar10", str(tmp_path), download=False)
    one_sentence(err, folder / "data_batch_3", "4 images but 3 labels")


def test_cifar_negative_label_is_one_sentence(tmp_path):
    folder = write_cifar10(tmp_path)
    batch = pickle.loads((folder / "test_batch").read_bytes(), encoding="bytes")
    batch[b"labels"][0] = -1
    (folder / "test_batch").write_bytes(pickle.dumps(batch, protocol=2))
    with pytest.raises(UserError) as err:
        load_cifar("cifar10", str(tmp_path), download=False)
    one_sentence(err, folder / "test_batch", "negative label")


def test_cifar_batch_that_cannot_be_read_is_one_sentence(tmp_path):
    from infobatch_runner.data.cifar import _read_batches

    path = tmp_path / "data_batch_1"
    path.mkdir()  # open() raises IsADirectoryError, an OSError
    with pytest.raises(UserError) as err:
        _read_batches([path], b"labels")
    assert "cannot read" in one_sentence(err, path)


def test_truncated_cifar_pickle_is_one_sentence(tmp_path):
    folder = write_cifar10(tmp_path)
    path = folder / "data_batch_2"
    path.write_bytes(path.read_bytes()[:1000])
    with pytest.raises(UserError) as err:
        load_cifar("cifar10", str(tmp_path), download=False)
    one_sentence(err, path, "not a readable CIFAR batch")


def test_one_class_folder_tree_is_one_sentence(tmp_path):
    write_image_tree(tmp_path, classes=("cat",))
    with pytest.raises(UserError) as err:
        load_folder_splits(str(tmp_path), "train", "val", 24, 28, False, None, None)
    one_sentence(err, tmp_path / "train", "1 class folder (cat)", "at least two")


def truncate(path):
    path.write_bytes(path.read_bytes()[: path.stat().st_size // 3])


def not_an_image(path):
    path.write_text("this is a text file, not a JPEG\n")


def corrupt_tree(root, damage):
    """A three-class tree whose train/dog/dog_0.jpg is damaged; the other files are fine."""
    write_image_tree(root)
    bad = root / "train" / "dog" / "dog_0.jpg"
    pixels = np.random.default_rng(1).integers(0, 256, (40, 47, 3), dtype=np.uint8)
    Image.fromarray(pixels).save(bad)  # a real JPEG, then damaged
    damage(bad)
    return bad


def plan_over(dataset, path):
    """A plan whose second batch holds the damaged file."""
    i = next(k for k, (p, _) in enumerate(dataset.samples) if p == str(path))
    others = [k for k in range(len(dataset)) if k != i]
    return torch.tensor(others[:4] + [i] + others[4:6])


@pytest.mark.parametrize("num_workers", [0, 2])
@pytest.mark.parametrize("damage", [truncate, not_an_image])
def test_corrupt_image_is_one_sentence_also_from_dataloader_workers(tmp_path, num_workers, damage):
    from infobatch_runner.data.loaders import Normalize, StreamLoader

    bad = corrupt_tree(tmp_path, damage)
    train, _, _, _ = load_folder_splits(str(tmp_path), "train", "val", 24, 28, False, None, None)
    norm = Normalize([0.5], [0.25], 3, torch.device("cpu"), channels_last=False)
    loader = StreamLoader(train, batch_size=4, device=torch.device("cpu"), normalize=norm, num_workers=num_workers)
    with pytest.raises(UserError) as err:
        list(loader.iterate(plan_over(train, bad)))
    one_sentence(err, bad, "cannot read image", "corrupt")
    # The same loader runs a clean plan afterwards (fresh workers replace the failed ones).
    fine = torch.tensor([k for k in range(len(train)) if train.samples[k][0] != str(bad)])
    assert torch.equal(torch.cat([b.idx for b in loader.iterate(fine)]), fine)
    loader.close()  # pytest's ExceptionInfo keeps this frame, and so the workers, alive otherwise


def test_corrupt_image_through_build_data_with_workers(tmp_path, compose_cfg):
    from infobatch_runner.data.build import build_data

    bad = corrupt_tree(tmp_path, truncate)
    cfg = compose_cfg(["dataset=imagenet", f"dataset.root={tmp_path}", "dataset.image_size=24", "dataset.eval_resize=28"])
    data = build_data(cfg.dataset, 4, 4, 2, torch.device("cpu"), False, 0)
    assert data.num_classes == 3
    with pytest.raises(UserError) as err:
        for _ in data.train.iterate(plan_over(data.train.dataset, bad)):
            pass
    one_sentence(err, bad)


def write_labelled_fashion_mnist(root, train_labels, test_labels):
    rng = np.random.default_rng(0)
    for split, labels in (("train", train_labels), ("t10k", test_labels)):
        labels = np.asarray(labels, dtype=np.uint8)
        write_idx(root / f"{split}-images-idx3-ubyte.gz", rng.integers(0, 256, (len(labels), 28, 28)), True)
        write_idx(root / f"{split}-labels-idx1-ubyte.gz", labels, True)


def test_limit_train_leaving_one_class_is_one_sentence(tmp_path, compose_cfg):
    from infobatch_runner.data.build import build_data

    write_labelled_fashion_mnist(tmp_path, [3, 3, 1, 9], [0, 1])
    cfg = compose_cfg(["dataset=fashion_mnist", f"dataset.root={tmp_path}", "dataset.limit_train=2"])
    with pytest.raises(UserError) as err:
        build_data(cfg.dataset, 8, 8, 0, torch.device("cpu"), False, 0)
    one_sentence(err, "dataset.limit_train=2", "single class (label 3)", "fashion_mnist", "at least two")
    cfg = compose_cfg(["dataset=fashion_mnist", f"dataset.root={tmp_path}", "dataset.limit_train=3"])
    assert build_data(cfg.dataset, 8, 8, 0, torch.device("cpu"), False, 0).num_classes == 10


def test_training_files_with_one_class_are_one_sentence(tmp_path, compose_cfg):
    from infobatch_runner.data.build import build_data

    write_labelled_fashion_mnist(tmp_path, [4, 4, 4], [0, 1])
    cfg = compose_cfg(["dataset=fashion_mnist", f"dataset.root={tmp_path}"])
    with pytest.raises(UserError) as err:
        build_data(cfg.dataset, 8, 8, 0, torch.device("cpu"), False, 0)
    one_sentence(err, "single class (label 4)", "at least two")


@pytest.mark.parametrize("loader", ["auto", "dataloader"])
def test_num_classes_below_the_labels_is_one_sentence(tmp_path, compose_cfg, loader):
    from infobatch_runner.data.build import build_data

    write_labelled_fashion_mnist(tmp_path, [0, 1, 2, 3], [0, 9])  # the test split holds the largest label
    cfg = compose_cfg(["dataset=fashion_mnist", f"dataset.root={tmp_path}", "dataset.num_classes=5"])
    with pytest.raises(UserError) as err:
        build_data(cfg.dataset, 8, 8, 0, torch.device("cpu"), False, 0, loader=loader)
    one_sentence(err, "dataset.num_classes=5", "up to 9", "dataset.num_classes=10")


def test_folder_num_classes_below_the_class_folders_is_one_sentence(tmp_path, compose_cfg):
    from infobatch_runner.data.build import build_data

    write_image_tree(tmp_path)
    cfg = compose_cfg(["dataset=imagenet", f"dataset.root={tmp_path}", "dataset.num_classes=2"])
    with pytest.raises(UserError) as err:
        build_data(cfg.dataset, 4, 4, 0, torch.device("cpu"), False, 0)
    one_sentence(err, "dataset.num_classes=2", "up to 2", "imagenet")


def test_folder_subset_or_images_of_one_class_are_one_sentence(tmp_path, compose_cfg):
    from infobatch_runner.data.build import build_data

    write_image_tree(tmp_path)
    cfg = compose_cfg(["dataset=imagenet", f"dataset.root={tmp_path}", "dataset.limit_train=1"])
    with pytest.raises(UserError) as err:
        build_data(cfg.dataset, 4, 4, 0, torch.device("cpu"), False, 0)
    one_sentence(err, "dataset.limit_train=1", "single class", "imagenet")

    for image in (tmp_path / "train" / "dog").iterdir():
        image.unlink()
    for image in (tmp_path / "train" / "fox").iterdir():
        image.unlink()
    cfg = compose_cfg(["dataset=imagenet", f"dataset.root={tmp_path}"])
    with pytest.raises(UserError) as err:
        build_data(cfg.dataset, 4, 4, 0, torch.device("cpu"), False, 0)
    one_sentence(err, "single class (label 0, cat)", "other class folders")
