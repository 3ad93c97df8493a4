"""The public name of the library API: `from infobatch_runner.library import IndexedDataset, Pruner`.

The code lives in integrations/pruner.py, beside the other integrations; this module keeps the
import path the README and users' code name.
"""

from infobatch_runner.integrations.pruner import IndexedDataset, PrunedBatchSampler, Pruner

__all__ = ["IndexedDataset", "PrunedBatchSampler", "Pruner"]
