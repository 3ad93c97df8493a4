"""The training engine: a run (train.py) through its epochs (loop.py), the static strategies'
scoring phase (scoring.py), checkpoints, torchrun (distributed.py), device, precision and timers
(runtime.py), the models and optimizers, the host allocator (hostmem.py) and the progress bar.

Layer: above data/, pruning/ and results/ (a run writes its records and, in a sweep, its
wall-clock saving against a finished baseline); it imports nothing above it.
"""
