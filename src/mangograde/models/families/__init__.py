"""The built-in model families; importing this package registers each of them."""

from . import cnn, colour, ensemble, rf, stack, svm, transfer  # noqa: F401
