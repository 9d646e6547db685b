"""``predict --record``: kept by :func:`mangograde.records.record_graded` (the one mapping
from a graded batch to rows); these names forward there for older imports."""

from __future__ import annotations

from ..graders import shares
from ..records import record_graded

__all__ = ["record_graded", "shares"]
