"""What a sweep adds to its jobs: skipping a job that repeats a finished job's run (repeats.py)
and the comparison written at the end of every multirun (callbacks.py, a Hydra callback).

Layer: above pruning/ and results/; the run folders' locks are results/folders.py, since a run
folder's owner is decided before any sweep exists.
"""
