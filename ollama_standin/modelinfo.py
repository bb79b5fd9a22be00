"""One served model: its ``Llama`` object and how it describes itself in ``/api/tags``, ``/api/show``, ``/api/ps``."""

from __future__ import annotations

import functools
import hashlib
import time
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

from llama_cpp import Llama

# llama.cpp's llama_ftype values (general.file_type) -> the quantization names Ollama shows.
_FILE_TYPES = {
    0: "F32", 1: "F16", 2: "Q4_0", 3: "Q4_1", 7: "Q8_0", 8: "Q5_0", 9: "Q5_1", 10: "Q2_K", 11: "Q3_K_S",
    12: "Q3_K_M", 13: "Q3_K_L", 14: "Q4_K_S", 15: "Q4_K_M", 16: "Q5_K_S", 17: "Q5_K_M", 18: "Q6_K",
    19: "IQ2_XXS", 20: "IQ2_XS", 21: "Q2_K_S", 22: "IQ3_XS", 23: "IQ3_XXS", 24: "IQ1_S", 25: "IQ4_NL",
    26: "IQ3_S", 27: "IQ3_M", 28: "IQ2_S", 29: "IQ2_M", 30: "IQ4_XS", 31: "IQ1_M", 32: "BF16",
}
# We never unload, which Ollama shows for keep_alive=-1 as an expiry far in the future.
_NEVER = "2318-01-01T00:00:00Z"


def rfc3339(ts: float | None = None) -> str:
    """A UTC timestamp as Ollama writes it (``2024-05-01T12:00:00.123456Z``)."""
    moment = datetime.fromtimestamp(time.time() if ts is None else ts, tz=timezone.utc)
    return moment.isoformat(timespec="microseconds").replace("+00:00", "Z")


def _human_params(n: int) -> str:
    """Ollama's parameter_size style: 134515008 -> "134.52M", 7241732096 -> "7.2B"."""
    if n >= 1_000_000_000:
        return f"{n / 1e9:.1f}B"
    if n >= 1_000_000:
        return f"{n / 1e6:.2f}M"
    return f"{n / 1e3:.2f}K"


def _typed(value: str) -> Any:
    """llama_cpp gives metadata values as strings; Ollama's model_info has numbers as numbers."""
    for kind in (int, float):
        try:
            return kind(value)
        except ValueError:
            pass
    return value


class ModelCard:
    """A GGUF file served under an Ollama name, with its loaded ``Llama``.

    The model is loaded in the constructor (0.1-0.9 s for SmolLM2) so that a server that answers
    ``GET /`` is ready to generate, and load errors show at start-up rather than on the first chat.
    """

    def __init__(self, name: str, path: Path, n_ctx: int = 2048, threads: int = 1) -> None:
        self.name, self.path, self.threads = name, path, threads
        self.llm = self._load(n_ctx)
        self.n_ctx = n_ctx
        arch = self.llm.metadata.get("general.architecture", "llama")
        self.family = arch
        self.n_ctx_train = int(self.llm.metadata.get(f"{arch}.context_length", n_ctx))
        # Llama has no public parameter count; _model.n_params() wraps llama_model_n_params.
        self.n_params = int(self.llm._model.n_params())

    def _load(self, n_ctx: int) -> Llama:
        # n_threads=1: with 2 threads and any other busy process on a 2-core box, OpenMP spin-waiting made
        # generation collapse from ~40 to 1-3 tokens/s. verbose=False keeps llama.cpp's load chatter off stderr.
        return Llama(
            model_path=str(self.path),
            n_ctx=n_ctx,
            n_threads=self.threads,
            n_threads_batch=self.threads,
            verbose=False,
        )

    def ensure_ctx(self, wanted: int) -> None:
        """Grow the context to ``wanted`` tokens (capped at the model's training context) if it is smaller.

        Ollama reloads a model whenever num_ctx changes. We only ever grow: a request for a smaller
        context runs in the bigger one (so callers that alternate sizes do not reload each time).
        Must be called with the engine lock held.
        """
        target = min(wanted, self.n_ctx_train)
        if target <= self.n_ctx:
            return
        # No explicit close() of the old Llama: a request being tokenized right now (outside the lock) may
        # still hold it, and closing would free the model under it. It is freed when the last reference goes.
        self.llm = self._load(target)
        self.n_ctx = target

    @functools.cached_property
    def digest(self) -> str:
        """sha256 of the GGUF file, hex, as Ollama lists it (computed once, on first use)."""
        sha = hashlib.sha256()
        with self.path.open("rb") as fh:
            for block in iter(lambda: fh.read(1 << 20), b""):
                sha.update(block)
        return sha.hexdigest()

    def details(self) -> dict[str, Any]:
        """Ollama's ``details`` object."""
        file_type = _typed(self.llm.metadata.get("general.file_type", ""))
        return {
            "parent_model": "",
            "format": "gguf",
            "family": self.family,
            "families": [self.family],
            "parameter_size": _human_params(self.n_params),
            "quantization_level": _FILE_TYPES.get(file_type, "unknown") if isinstance(file_type, int) else "unknown",
        }

    def tag_entry(self) -> dict[str, Any]:
        """One entry of ``GET /api/tags``."""
        return {
            "name": self.name,
            "model": self.name,
            "modified_at": rfc3339(self.path.stat().st_mtime),
            "size": self.path.stat().st_size,
            "digest": self.digest,
            "details": self.details(),
        }

    def ps_entry(self) -> dict[str, Any]:
        """One entry of ``GET /api/ps`` (everything served is always loaded, on the CPU)."""
        return {
            "name": self.name,
            "model": self.name,
            "size": self.path.stat().st_size,
            "digest": self.digest,
            "details": self.details(),
            "expires_at": _NEVER,
            "size_vram": 0,
            "context_length": self.n_ctx,
        }

    def show(self) -> dict[str, Any]:
        """``POST /api/show``: the template is the GGUF's Jinja chat template, not an Ollama Go template."""
        meta = self.llm.metadata
        template = meta.get("tokenizer.chat_template", "")
        eos = self.llm.token_eos()
        eos_text = self.llm.detokenize([eos], special=True).decode("utf-8", "replace") if eos != -1 else ""
        parameters = f"num_ctx {self.n_ctx}" + (f'\nstop "{eos_text}"' if eos_text else "")
        modelfile = (
            f"# Modelfile generated by ollama_standin\n# FROM {self.name}\n\nFROM {self.path}\n"
            + (f'TEMPLATE """{template}"""\n' if template else "")
            + "".join(f"PARAMETER {line}\n" for line in parameters.splitlines())
        )
        model_info: dict[str, Any] = {k: _typed(v) for k, v in meta.items() if k != "tokenizer.chat_template"}
        model_info["general.parameter_count"] = self.n_params
        out: dict[str, Any] = {
            "modelfile": modelfile,
            "parameters": parameters,
            "template": template,
            "details": self.details(),
            "model_info": model_info,
            "capabilities": ["completion"],
            "modified_at": rfc3339(self.path.stat().st_mtime),
        }
        if meta.get("general.license"):
            out["license"] = meta["general.license"]
        return out
