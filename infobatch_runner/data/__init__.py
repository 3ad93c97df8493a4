"""Datasets (readers of real on-disk formats) and the loaders that consume an epoch plan."""

from infobatch_runner.data.build import DataBundle, build_data

__all__ = ["DataBundle", "build_data"]
