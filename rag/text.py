"""Plain text for people, shared by the command line and the app."""

from __future__ import annotations

from pathlib import Path


def snippet(text: str, width: int = 90) -> str:
    """`text` on one line, whitespace squeezed, cut to `width` characters with an ellipsis."""
    flat = " ".join(text.split())
    return flat if len(flat) <= width else flat[: width - 1] + "…"


def model_label(name: str) -> str:
    """A model setting as a short label: a hub id as given, a local folder by its folder name (a path says nothing
    to a reader)."""
    path = Path(name.rstrip("/"))
    return path.name if name.startswith(("/", ".", "~")) or path.is_dir() else name
