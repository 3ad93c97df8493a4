"""The public name of the Lightning callback: `from infobatch_runner.lightning import InfoBatchCallback`.

The code lives in integrations/lightning.py and needs the optional extra `[lightning]`; nothing
else in infobatch_runner imports this module.
"""

from infobatch_runner.integrations.lightning import InfoBatchCallback

__all__ = ["InfoBatchCallback"]
