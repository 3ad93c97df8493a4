"""infobatch-runner: lossless training acceleration by dynamic data pruning, measured honestly."""

from pathlib import Path as _Path

__version__ = "0.1.0"

# The configs live in the checkout's top-level conf/, which pyproject's package-dir maps to
# infobatch_runner.conf only in an installed (or editable) package. Imported from a plain source
# checkout on PYTHONPATH (a GPU box with the dependencies staged, nothing installed), look for
# subpackages in the checkout root too, so that `infobatch_runner.conf` is conf/ there as well.
_here = _Path(__file__).resolve().parent
if not (_here / "conf").is_dir() and (_here.parent / "conf" / "__init__.py").is_file():
    __path__.append(str(_here.parent))
