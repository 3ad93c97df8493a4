"""Fashion-MNIST in its original IDX format (gzipped or not), as Debian and the authors ship it."""

import gzip
import struct
import zlib
from pathlib import Path

import numpy as np
import torch

from infobatch_runner.data.arrays import ImageArrays
from infobatch_runner.data.messages import DOWNLOAD_ERRORS, one_line, reason
from infobatch_runner.errors import UserError

DEBIAN_DIR = Path("/usr/share/datasets/fashion-mnist")
FILES = {
    "train": ("train-images-idx3-ubyte", "train-labels-idx1-ubyte"),
    "test": ("t10k-images-idx3-ubyte", "t10k-labels-idx1-ubyte"),
}
_DTYPES = {0x08: np.uint8}


def _read_bytes(path: Path) -> bytes:
    """The file's bytes, gunzipped when it ends in .gz; every failure becomes one sentence naming it."""
    try:
        if path.suffix == ".gz":
            with gzip.open(path, "rb") as f:
                return f.read()
        return path.read_bytes()
    except gzip.BadGzipFile as exc:
        if str(exc).startswith("Not a gzipped file"):
            raise UserError(f"{path} is not gzip-compressed although its name ends in .gz; "
                            "replace it with the original file.") from None
        raise UserError(f"{path} is a corrupt gzip file ({reason(exc)}); replace it with the original file.") from None
    except (EOFError, zlib.error) as exc:
        raise UserError(f"{path} is a truncated or corrupt gzip file ({reason(exc)}); "
                        "replace it with the original file.") from None
    except OSError as exc:
        raise UserError(f"cannot read {path} ({reason(exc)}); check that it is a readable file, "
                        "or replace it with the original.") from None


def read_idx(path: Path) -> np.ndarray:
    """Parse one IDX file: magic (0, 0, dtype, ndim), ndim big-endian sizes, then the data."""
    raw = _read_bytes(path)
    if len(raw) < 4 or raw[0] != 0 or raw[1] != 0 or raw[2] not in _DTYPES:
        raise UserError(f"{path} is not an IDX file of unsigned bytes; replace it with the original.")
    ndim = raw[3]
    header = 4 + 4 * ndim
    if len(raw) < header:
        raise UserError(f"{path} is truncated: its header declares {ndim} dimensions but the file ends "
                        f"after {len(raw)} bytes; replace it with the original.")
    shape = struct.unpack(f">{ndim}I", raw[4:header])
    expected = int(np.prod(shape, dtype=np.int64))
    data = np.frombuffer(raw, dtype=np.uint8, offset=header)
    if data.size < expected:
        raise UserError(f"{path} is truncated ({data.size} of {expected} values); replace it with the original.")
    if data.size > expected:
        raise UserError(f"{path} holds {data.size} values where its header declares {expected}; "
                        "replace it with the original.")
    return data.reshape(shape)


def _find(directory: Path, stem: str) -> Path | None:
    for name in (stem + ".gz", stem):
        if (directory / name).is_file():
            return directory / name
    return None


def candidate_dirs(root: str | None) -> list[Path]:
    dirs = []
    if root:
        root_path = Path(root).expanduser()
        dirs += [root_path, root_path / "FashionMNIST" / "raw"]  # the second is torchvision's layout
    dirs.append(DEBIAN_DIR)
    return dirs


def locate(root: str | None) -> Path | None:
    for directory in candidate_dirs(root):
        if all(_find(directory, stem) for pair in FILES.values() for stem in pair):
            return directory
    return None


def load_split(directory: Path, split: str) -> ImageArrays:
    images_stem, labels_stem = FILES[split]
    images = read_idx(_find(directory, images_stem))
    labels = read_idx(_find(directory, labels_stem))
    if images.ndim != 3 or labels.ndim != 1 or images.shape[0] != labels.shape[0]:
        raise UserError(f"the Fashion-MNIST {split} files in {directory} do not match each other; replace them.")
    return ImageArrays(torch.from_numpy(images.copy()).unsqueeze(1), torch.from_numpy(labels.astype(np.int64)))


def _download(target: Path) -> None:
    from torchvision.datasets import FashionMNIST

    try:
        FashionMNIST(str(target), train=True, download=True)
        FashionMNIST(str(target), train=False, download=True)
    except DOWNLOAD_ERRORS as exc:
        files = ", ".join(stem + ".gz" for pair in FILES.values() for stem in pair)
        raise UserError(
            f"the fashion_mnist download into dataset.root={target} failed ({one_line(exc)}); without network, "
            f"copy the four IDX files ({files}) into {target} by hand, or `apt-get install dataset-fashion-mnist`."
        ) from None


def load_fashion_mnist(root: str | None, download: bool) -> tuple[ImageArrays, ImageArrays]:
    directory = locate(root)
    if directory is None and download:
        target = Path(root or "data").expanduser()
        _download(target)
        directory = locate(str(target))
    if directory is None:
        looked = ", ".join(str(d) for d in candidate_dirs(root))
        raise UserError(
            f"Fashion-MNIST not found (looked in {looked}); install it with "
            "`apt-get install dataset-fashion-mnist`, point dataset.root at the IDX files, "
            "or add dataset.download=true."
        )
    return load_split(directory, "train"), load_split(directory, "test")
