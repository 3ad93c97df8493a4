"""Datasets (readers of real on-disk formats, build.py) and the loaders that consume an epoch plan.

Nothing is imported here: the library imports loaders.py alone, without torchvision.
"""
