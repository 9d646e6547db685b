"""``mangograde serve``: a grading service and a web page over a trained run."""

from __future__ import annotations

from .app import ServeOptions, create_app

__all__ = ["ServeOptions", "create_app"]
