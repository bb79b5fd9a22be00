"""Plain text for people, shared by the command line and the app."""

from __future__ import annotations


def snippet(text: str, width: int = 90) -> str:
    """`text` on one line, whitespace squeezed, cut to `width` characters with an ellipsis."""
    flat = " ".join(text.split())
    return flat if len(flat) <= width else flat[: width - 1] + "…"
