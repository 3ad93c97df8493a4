"""infobatch-runner: lossless training acceleration by dynamic data pruning, measured honestly."""

__version__ = "0.1.0"
