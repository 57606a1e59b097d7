"""A prompt as a list of parts: plain text, and control tokens named by their text.

User text is always tokenized as plain text, so a ``<|fim_middle|>`` typed in a
file cannot act as a control token; only ``Special`` parts become control tokens.
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class Special:
    """A control token, by its text (``<|fim_prefix|>``)."""

    name: str


Part = str | Special
Prompt = list[Part]
