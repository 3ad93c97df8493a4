"""The public name of the library API: `from infobatch_runner.library import IndexedDataset, Pruner`.

The code lives in integrations/ beside the other integrations (pruner.py: the Pruner; pruner_args.py:
what it is built from; batches.py: its batch sampler and IndexedDataset); this module keeps the
import path the docs and users' code name.
"""

from infobatch_runner.integrations.batches import IndexedDataset, PrunedBatchSampler
from infobatch_runner.integrations.pruner import Pruner

__all__ = ["IndexedDataset", "PrunedBatchSampler", "Pruner"]
