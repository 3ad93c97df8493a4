"""The config tree of infobatch-run (shipped as infobatch_runner.conf). Importing it, as Hydra does
before reading a file from it, registers the typed schemas that the YAML files declare."""

from infobatch_runner.config.schema import register

register()
