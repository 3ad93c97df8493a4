"""What a valid config is, checked before anything runs: the typed schemas (schema.py), the
`group=option` choices (choices.py), every value's range and fit (validate.py), and the preflight
that composes every job of a command and checks its folder before Hydra writes (preflight.py).

Layer: above engine/, whose registries (models, optimizers, schedules, precisions) and
checkpoints it checks against; the YAML itself is the `conf/` tree (infobatch_runner.conf).
"""
