"""Every problem of a file or folder a user brings, said in one message."""

from __future__ import annotations

from ..basics.errors import DatasetError


class Problems:
    """Collects every problem so the user sees them all in one message."""

    def __init__(self, what: str) -> None:
        self.what = what
        self.items: list[str] = []

    def add(self, message: str) -> None:
        self.items.append(message)

    def raise_if_any(self, advice: str = "") -> None:
        if self.items:
            lines = "\n".join(f"  - {item}" for item in self.items)
            tail = f"\n{advice}" if advice else ""
            raise DatasetError(f"Cannot load {self.what}:\n{lines}{tail}")
