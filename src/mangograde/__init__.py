"""mangograde: grade harvested mangoes from photos."""

from . import _moved

__version__ = "0.1.0"

_moved.install()
