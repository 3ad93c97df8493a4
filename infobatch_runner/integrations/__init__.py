"""The strategies in other people's training loops: `Pruner` and its batch sampler for any
PyTorch loop (pruner.py) and the PyTorch Lightning callback (lightning.py). Users import them
by their public names, infobatch_runner.library and infobatch_runner.lightning.

Layer: above engine/ (torchrun's shards and merged observations), data/ and pruning/.
"""
