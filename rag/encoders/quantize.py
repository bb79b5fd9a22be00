"""Number formats of the encoders, and their int8 copies: built once, cached with provenance, checked before use.

int8 here is *static* quantization with OpenVINO + NNCF: activation ranges are measured on real (question, chunk)
pairs (`CALIBRATION`, SciFact claims the benchmarks never evaluate on), so that no range is guessed per batch at run
time. A build converts the configured model (float32) to OpenVINO, quantizes it, and then checks it against float32
on pools of 20 chunks it was not calibrated on: it is used only if at least 29 of every 30 top-3 chunks are the
same (`MIN_TOP3_AGREEMENT`). The build also times float32, bfloat16 (where native) and int8 on those pools, so that
`auto` takes int8 only where it is the fastest format that passed on this CPU.

The same build keeps the converted model unquantized as well (`model-float32.xml`): float32 computed by OpenVINO's
kernels instead of torch's; and writes two copies for ONNX Runtime (`rag/encoders/onnx_copy.py`): float32 (its fused
BERT operators), and int8 (dynamic, no calibration), whose int8 kernels are faster than float32 on a CPU without VNNI,
where OpenVINO's are not. Each is checked and timed beside the others (`COPIES`); `auto` takes the fastest copy
that kept the rankings and beat torch (`choose_copy`), and only the chosen copy is opened.

The copy lives in `<quantized_cache>/<kind>-<source hash>/` with `provenance.json` (source model and its hash, format,
calibration file and its hash, libraries, CPU, check and timings); a change of the source model, of the calibration
file or of `BUILD_VERSION` builds a new copy. Loading needs no network. Missing packages (openvino and nncf, in
requirements.txt), a failed build or a failed check leave the torch formats in use, with a notice saying why.
"""

from __future__ import annotations

import hashlib
import json
import shutil
import sys
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Literal

import numpy as np

from .batches import length_buckets, pad_batch

Kind = Literal["cross-encoder", "bi-encoder"]
FORMATS = ("auto", "float32", "bfloat16", "int8")
CALIBRATION = Path(__file__).resolve().parent / "data" / "calibration.jsonl.gz"
# 2: formats timed interleaved; 3: an OpenVINO float32 copy beside; 4: ONNX Runtime int8 too; 5: and ONNX Runtime
# float32, residual adds unfused, the checks under `checks`; 6: ONNX Runtime's copies timed one sequence per core
BUILD_VERSION = 6
MIN_TOP3_AGREEMENT = 29 / 30
INT8_PACKAGES = ("openvino", "nncf")
Forward = Callable[[dict[str, np.ndarray]], np.ndarray]


def cpu_flags() -> set[str]:
    """The CPU's feature flags as Linux reports them (empty elsewhere)."""
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("flags"):
                return set(line.split(":", 1)[1].split())
    except OSError:
        pass
    return set()


def cpu_kind(flags: set[str] | None = None) -> str:
    """What matters for the formats: native bf16 (AVX512-BF16/AMX), int8 dot products (VNNI), or AVX2 only."""
    flags = cpu_flags() if flags is None else flags
    parts = [name for name, flag in (("amx", "amx_bf16"), ("avx512-bf16", "avx512_bf16"),
                                     ("vnni", "avx512_vnni"), ("avx-vnni", "avx_vnni")) if flag in flags]
    return "+".join(parts) or ("avx2" if "avx2" in flags else "other")


def missing_int8_packages() -> list[str]:
    import importlib.util

    return [name for name in INT8_PACKAGES if importlib.util.find_spec(name) is None]


@dataclass(frozen=True)
class FormatChoice:
    """What an encoder loads: its torch format (always, as the fallback) and whether to try int8."""

    torch_precision: str
    int8: bool
    notice: str | None = None


def choose_format(precision: str, device: str, kind: Kind) -> FormatChoice:
    """`precision` is a setting value (`FORMATS`). int8 runs on the CPU only and needs openvino and nncf."""
    if precision not in FORMATS:
        raise ValueError(f"unknown number format {precision!r}; one of {', '.join(FORMATS)}")
    if precision not in ("auto", "int8"):
        return FormatChoice(precision, int8=False)
    if device != "cpu":
        note = None if precision == "auto" else f"int8 runs on the CPU only; the {kind} uses {device} in torch"
        return FormatChoice("auto", int8=False, notice=note)
    missing = missing_int8_packages()
    if missing:
        note = None if precision == "auto" else (
            f"int8 needs {', '.join(missing)} (pip install -r requirements.txt); the {kind} runs in torch")
        return FormatChoice("auto", int8=False, notice=note)
    return FormatChoice("auto", int8=True)


def format_name(dtype) -> str:
    return str(dtype).removeprefix("torch.")


FLOAT32_COPY = "openvino-float32"
ORT_INT8 = "onnxruntime-int8"
ORT_FLOAT32 = "onnxruntime-float32"
# The copies a build writes, by the names their checks and timings are kept under, and the format names shown.
SHOWN = {"int8": "int8 (OpenVINO, static)", FLOAT32_COPY: "float32 (OpenVINO)",
         ORT_INT8: "int8 (ONNX Runtime, dynamic)", ORT_FLOAT32: "float32 (ONNX Runtime)"}
COPIES = tuple(SHOWN)
INT8_COPIES = ("int8", ORT_INT8)
OPENVINO_FLOAT32, ORT_INT8_NAME = SHOWN[FLOAT32_COPY], SHOWN[ORT_INT8]
# Whose ONNX Runtime int8 copy may be used. Every build writes and checks one (so that the benchmarks measure it),
# but on SciFact the cross-encoder's kept only 24 to 26 of 30 top-3 chunks of float32's (bench/precision.py; its
# build check, ten pools, had passed it once), while the bi-encoder's kept dense nDCG@10 (README: 'Number formats').
ORT_INT8_KINDS = ("bi-encoder",)


@dataclass
class EncoderCopies:
    """The outcome of loading (or building) an encoder's copies: `openers` opens each copy on disk (only when it
    is chosen: each costs a second and its weights' memory); `provenance` holds their checks and timings."""

    openers: dict[str, Callable[[], Forward]] = field(default_factory=dict)
    provenance: dict = field(default_factory=dict)
    notice: str | None = None
    files: dict[str, Path] = field(default_factory=dict)  # each copy's file, for those on disk

    def passed(self, copy: str) -> bool:
        """The copy kept float32's rankings on the build's check pools (whether or not it may be used)."""
        return bool(self.provenance.get("checks", {}).get(copy, {}).get("passed"))

    def usable(self, copy: str) -> bool:
        """The copy exists, passed its check, and may be used for this kind of encoder."""
        allowed = copy != ORT_INT8 or self.provenance.get("kind") in ORT_INT8_KINDS
        return copy in self.openers and self.passed(copy) and allowed

    def faster(self, copy: str) -> bool:
        """Usable, and faster than every torch format that this CPU computes natively (timed when it was built)."""
        timings = self.provenance.get("timings_ms", {})
        torch_formats = [ms for fmt, ms in timings.items() if fmt not in COPIES]
        return self.usable(copy) and copy in timings and all(timings[copy] < ms for ms in torch_formats)


def choose_copy(precision: str, loaded: EncoderCopies) -> str:
    """Which copy an encoder computes with: one of COPIES, or "torch".

    `int8` takes the faster, as timed when the copies were built, of the int8 copies that kept float32's rankings.
    `auto` takes the fastest of all copies that kept them and beat every torch format; torch where none did."""
    if precision == "int8":
        return _fastest(loaded, [copy for copy in INT8_COPIES if loaded.usable(copy)]) or "torch"
    if precision == "auto":
        return _fastest(loaded, [copy for copy in COPIES if loaded.faster(copy)]) or "torch"
    return "torch"


def float32_copy(loaded: EncoderCopies) -> str | None:
    """The faster, as timed when built, of the float32 copies that kept torch float32's rankings; None if neither."""
    return _fastest(loaded, [copy for copy in (FLOAT32_COPY, ORT_FLOAT32) if loaded.usable(copy)])


def _fastest(loaded: EncoderCopies, copies: list[str]) -> str | None:
    timings = loaded.provenance.get("timings_ms", {})
    return min(copies, key=lambda copy: timings.get(copy, float("inf")), default=None)


def open_copy(precision: str, loaded: EncoderCopies) -> tuple[Forward, str] | None:
    """The copy `choose_copy` picks, as (forward, format name shown); None where the encoder stays in torch."""
    return open_named_copy(choose_copy(precision, loaded), loaded)


def open_named_copy(copy: str, loaded: EncoderCopies) -> tuple[Forward, str] | None:
    """The copy named `copy` (one of COPIES), checked or not, as (forward, format name shown); None where there is
    no such copy ("torch" included)."""
    opener = loaded.openers.get(copy)
    return None if opener is None else (opener(), SHOWN[copy])


def load_int8(kind: Kind, name: str, source: str, cache: Path | None, tokenizer, max_length: int) -> EncoderCopies:
    """The cached int8 copy of `source` for this kind, built first if needed; never raises."""
    cache = _cache_folder(cache)
    try:
        folder, wanted = _copies_folder(kind, name, source, cache)
        provenance = _read_provenance(folder)
        if not _matches(provenance, wanted):
            from filelock import FileLock

            cache.mkdir(parents=True, exist_ok=True)
            # The lock sits beside the folder, not in it, so that a failed build can remove the whole folder.
            with FileLock(str(cache / f".{folder.name}.build.lock")):
                provenance = _read_provenance(folder)
                if not _matches(provenance, wanted):
                    print(f"rag: building the int8 {kind} from {name} (once; about a minute)", file=sys.stderr,
                          flush=True)
                    provenance = _build_afresh(kind, source, folder, tokenizer, max_length, wanted)
        return _copies(kind, folder, provenance, cache)
    except Exception as exc:  # a failed build or load must not take the encoder down: torch is the fallback
        first = str(exc).splitlines()[0][:200] if str(exc) else type(exc).__name__
        return EncoderCopies(notice=f"int8 {kind} could not be built or loaded ({type(exc).__name__}: {first}); "
                                    f"using torch")


def _build_afresh(kind: Kind, source: str, folder: Path, tokenizer, max_length: int, wanted: dict) -> dict:
    """Build the copies into `folder` (the caller holds its lock); a build that fails removes the folder, so that
    nothing half-built stays in the cache."""
    from .int8_build import build

    (folder / "provenance.json").unlink(missing_ok=True)  # written again last, once complete
    folder.mkdir(parents=True, exist_ok=True)
    try:
        return build(kind, source, folder, tokenizer, max_length, wanted)
    except BaseException:
        shutil.rmtree(folder, ignore_errors=True)
        raise


def built_copies(kind: Kind, name: str, source: str, cache: Path | None) -> EncoderCopies | None:
    """The copies of `source` as `load_int8` gives them, where they are already built for it; else None (nothing is
    built, and nothing that needs torch is imported)."""
    cache = _cache_folder(cache)
    try:
        folder, wanted = _copies_folder(kind, name, source, cache)
        provenance = _read_provenance(folder)
        return _copies(kind, folder, provenance, cache) if _matches(provenance, wanted) else None
    except Exception:  # anything amiss: `load_int8` will say what
        return None


def _cache_folder(cache: Path | None) -> Path:
    return Path(cache or Path.home() / ".cache" / "rag" / "quantized").expanduser()


def _copies_folder(kind: Kind, name: str, source: str, cache: Path) -> tuple[Path, dict]:
    """Where the copies of `source` live, and the provenance they must have there."""
    if not Path(source).is_dir():  # a hub id not yet downloaded: nothing to hash, so nothing to cache by
        raise ValueError("the model is not in a local folder yet (it loads from the hub)")
    digest = source_digest(Path(source))
    return cache / f"{kind}-{digest[:16]}", _wanted(name, source, digest)


def _copies(kind: Kind, folder: Path, provenance: dict, cache: Path) -> EncoderCopies:
    files = copy_files(folder)
    loaded = EncoderCopies(openers=_openers(files, cache / "openvino-cache"), provenance=provenance, files=files)
    check = provenance.get("checks", {}).get("int8", {})
    loaded.notice = None if any(loaded.usable(c) for c in INT8_COPIES) else (
        f"int8 {kind} not used: it kept {check.get('top3_same')} of {check.get('top3_total')} top-3 chunks of "
        f"float32's on the check pools (needs {MIN_TOP3_AGREEMENT:.0%}); provenance in {folder}")
    return loaded


def copy_files(folder: Path) -> dict[str, Path]:
    """Each copy's file in `folder`, for the copies whose file exists (a failed build leaves its copy out)."""
    from . import onnx_copy

    files = {"int8": folder / "model.xml", FLOAT32_COPY: folder / "model-float32.xml",
             ORT_INT8: folder / onnx_copy.FILE, ORT_FLOAT32: folder / onnx_copy.FLOAT32_FILE}
    return {copy: path for copy, path in files.items() if path.is_file()}


def _openers(files: dict[str, Path], openvino_cache: Path) -> dict[str, Callable[[], Forward]]:
    """How to open each of these copies."""
    from . import onnx_copy

    def opener(copy: str, path: Path) -> Callable[[], Forward]:
        if copy in (ORT_INT8, ORT_FLOAT32):
            return lambda: onnx_copy.open_session(path)
        return lambda: _compile(path, openvino_cache)

    return {copy: opener(copy, path) for copy, path in files.items()}


# Digests computed in this process, by folder and its files' names, sizes and modification times.
_DIGESTS: dict[tuple, str] = {}


def source_digest(folder: Path) -> str:
    """sha256 over the model folder's files (names and contents), READMEs aside.

    Read once per process while the files stay as they were (same names, sizes and modification times): an
    encoder that finds no record beside its copies looks them up twice, first for the record, then to load them."""
    files = sorted(p for p in folder.rglob("*") if p.is_file() and p.suffix.lower() != ".md"
                   and not any(part.startswith(".") for part in p.relative_to(folder).parts))
    stamp = (str(folder.resolve()), tuple((str(p.relative_to(folder)), p.stat().st_size, p.stat().st_mtime_ns)
                                          for p in files))
    if stamp not in _DIGESTS:
        h = hashlib.sha256()
        for path in files:
            h.update(str(path.relative_to(folder)).encode() + b"\0")
            with path.open("rb") as f:
                for block in iter(lambda: f.read(1 << 20), b""):
                    h.update(block)
        _DIGESTS[stamp] = h.hexdigest()
    return _DIGESTS[stamp]


def _wanted(name: str, source: str, digest: str) -> dict:
    return {"build_version": BUILD_VERSION, "source_model": name, "source_path": str(source),
            "source_sha256": digest, "calibration_sha256": hashlib.sha256(CALIBRATION.read_bytes()).hexdigest()}


def _matches(provenance: dict | None, wanted: dict) -> bool:
    keys = ("build_version", "source_sha256", "calibration_sha256")
    return bool(provenance) and all(provenance.get(k) == wanted[k] for k in keys)


def _read_provenance(folder: Path) -> dict | None:
    try:
        provenance = json.loads((folder / "provenance.json").read_text())
    except (OSError, ValueError):
        return None
    return provenance if (folder / "model.xml").is_file() else None


class Encoder:
    """Tokenize once, batch by length, pad to the batch's longest; for building and checking."""

    def __init__(self, kind: Kind, tokenizer, max_length: int) -> None:
        self.kind, self.tokenizer, self.max_length = kind, tokenizer, max_length

    def _tokenize(self, texts: Sequence[tuple[str, str]] | Sequence[str]):
        if self.kind == "cross-encoder":
            return self.tokenizer([q for q, _ in texts], [p for _, p in texts], truncation=True,
                                  max_length=self.max_length)
        return self.tokenizer(list(texts), truncation=True, max_length=self.max_length)

    def features(self, texts: Sequence[tuple[str, str]] | Sequence[str],
                 batch_size: int = 32) -> list[tuple[list[int], dict]]:
        """(indexes, padded arrays) per batch of inputs of similar length."""
        encoded = self._tokenize(texts)
        pad = self.tokenizer.pad_token_id or 0
        return [(batch, pad_batch(encoded, batch, pad))
                for batch in length_buckets([len(ids) for ids in encoded["input_ids"]], batch_size)]

    def padded(self, texts: Sequence[tuple[str, str]] | Sequence[str]) -> dict[str, np.ndarray]:
        """All inputs in one batch, padded to the longest."""
        return pad_batch(self._tokenize(texts), range(len(texts)), self.tokenizer.pad_token_id or 0)

    def scores(self, forward: Forward, pool: tuple[str, list[str]]) -> list[float]:
        """Relevance of each passage of a pool to its question: logit, or cosine of mean-pooled embeddings."""
        question, passages = pool
        if self.kind == "cross-encoder":
            out = np.zeros(len(passages), dtype=np.float32)
            for batch, feats in self.features([(question, p) for p in passages]):
                out[batch] = np.asarray(forward(feats), dtype=np.float32).reshape(len(batch), -1)[:, 0]
            return out.tolist()
        vectors = self.embed(forward, [question, *passages])
        return (vectors[1:] @ vectors[0]).tolist()

    def embed(self, forward: Forward, texts: Sequence[str], batch_size: int = 32) -> np.ndarray:
        """Unit-length mean-pooled embeddings, as sentence-transformers' Pooling(mean) + Normalize give."""
        out = np.zeros((len(texts), 0), dtype=np.float32)
        for batch, feats in self.features(texts, batch_size):
            pooled = mean_pool(np.asarray(forward(feats), dtype=np.float32), feats["attention_mask"])
            if out.shape[1] == 0:
                out = np.zeros((len(texts), pooled.shape[1]), dtype=np.float32)
            out[batch] = pooled
        return out / np.maximum(np.linalg.norm(out, axis=1, keepdims=True), 1e-12)


def mean_pool(hidden: np.ndarray, mask: np.ndarray) -> np.ndarray:
    """sentence-transformers' mean pooling: the average of the token vectors the attention mask keeps."""
    weights = mask[..., None].astype(np.float32)
    return (hidden * weights).sum(axis=1) / np.maximum(weights.sum(axis=1), 1e-9)


def _compile(xml: Path, cache_dir: Path) -> Forward:
    """An OpenVINO copy compiled for the CPU; the compiled blob is cached so that later loads are quick."""
    import openvino as ov

    core = ov.Core()
    core.set_property({"CACHE_DIR": str(cache_dir)})
    # f32 for what stays unquantized, so that the model computes what the check measured, on any CPU.
    compiled = core.compile_model(core.read_model(str(xml)), "CPU",
                                  {"PERFORMANCE_HINT": "LATENCY", "INFERENCE_PRECISION_HINT": "f32"})
    request = compiled.create_infer_request()
    names = {port.get_any_name() for port in compiled.inputs}
    output = compiled.outputs[0]  # logits (cross-encoder) or the token vectors (bi-encoder)

    def forward(features: dict[str, np.ndarray]) -> np.ndarray:
        return request.infer({k: v for k, v in features.items() if k in names})[output]
    return forward
