"""Answers that are not grades, shared by the labels, the records and the service."""

from __future__ import annotations

# The answer for a photo of something that is not a mango (an empty cup, a leaf, a hand,
# another fruit): never a grade. The records keep it as a correction's grade, Label
# Studio's choice "not a mango" exports it, and labels that give it leave the photo out.
REJECT = "reject"
