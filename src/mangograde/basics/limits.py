"""Limits the commands share before anything heavy is imported."""

from __future__ import annotations

# The largest photo a phone takes in its usual high-resolution mode (8160 x 6120, 50 MP).
# A JPEG is reduced while it is read, so only what is left after that counts; other
# formats are decoded whole: 50 MP of RGB is 150 MB, 169 MP (a 13000 px PNG) 1 GB.
DEFAULT_MAX_PIXELS = 50_000_000
