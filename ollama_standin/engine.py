"""Running ``llama_cpp.Llama`` for Ollama-style requests.

This module knows nothing about HTTP: it turns an Ollama request body into prompt tokens plus sampling
settings (:meth:`Engine.prepare`), and runs one generation as a plain generator of text pieces followed
by a :class:`Summary` (:meth:`Engine.run`). ``server.py`` wraps that in FastAPI.
"""

from __future__ import annotations

import functools
import json
import random
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from llama_cpp import Llama, LlamaGrammar, StoppingCriteriaList
from llama_cpp.llama_chat_format import Jinja2ChatFormatter
from llama_cpp.llama_grammar import JSON_GBNF

from ollama_standin.modelinfo import ModelCard

# Ollama's own sampling defaults (its api/types.go DefaultOptions), so that an app that sends no options
# samples as it would against Ollama. llama_cpp's defaults differ (e.g. min_p 0.05, max_tokens 16).
OLLAMA_DEFAULTS: dict[str, float] = {
    "temperature": 0.8,
    "top_k": 40,
    "top_p": 0.9,
    "min_p": 0.0,
    "typical_p": 1.0,
    "repeat_penalty": 1.1,
    "presence_penalty": 0.0,
    "frequency_penalty": 0.0,
}
# Ollama option name -> (llama_cpp keyword, converter). Options not listed here or handled in
# Engine.prepare (seed, stop, num_predict, num_ctx) are accepted and ignored, as Ollama ignores unknown
# ones: num_keep, repeat_last_n (llama_cpp fixes it at 64, Ollama's default), num_thread, num_gpu, ...
_SAMPLING_OPTIONS: dict[str, tuple[str, type]] = {
    "temperature": ("temperature", float), "top_k": ("top_k", int), "top_p": ("top_p", float),
    "min_p": ("min_p", float), "typical_p": ("typical_p", float), "repeat_penalty": ("repeat_penalty", float),
    "presence_penalty": ("presence_penalty", float), "frequency_penalty": ("frequency_penalty", float),
    "mirostat": ("mirostat_mode", int), "mirostat_tau": ("mirostat_tau", float), "mirostat_eta": ("mirostat_eta", float),
}


class RequestError(Exception):
    """A request Ollama would refuse; ``status`` is the HTTP status, ``message`` goes in ``{"error": ...}``."""

    def __init__(self, status: int, message: str) -> None:
        super().__init__(message)
        self.status = status
        self.message = message


@dataclass
class Summary:
    """Statistics of one finished generation, in Ollama's units (durations in nanoseconds)."""

    done_reason: str  # "stop" or "length" as Ollama; "disconnected" is only ever logged
    prompt_eval_count: int
    eval_count: int
    total_duration: int
    load_duration: int
    prompt_eval_duration: int
    eval_duration: int

    def fields(self) -> dict[str, Any]:
        """The keys of Ollama's final (``"done": true``) object."""
        return {
            "done_reason": self.done_reason,
            "total_duration": self.total_duration,
            "load_duration": self.load_duration,
            "prompt_eval_count": self.prompt_eval_count,
            "prompt_eval_duration": self.prompt_eval_duration,
            "eval_count": self.eval_count,
            "eval_duration": self.eval_duration,
        }


class _TokenCounter:
    """A stopping criterion that never stops, used to count sampled tokens.

    llama_cpp's streaming API reports no usage, and its chunks are not one per token (it holds text back
    while it could be the start of a stop string). The criterion is called once per sampled token with
    the context so far (lengths P, P+1, ... P+n-1), and once more at the end with a length it has already
    seen, so the number of distinct lengths is the number of sampled tokens, end-of-turn token included
    (as Ollama counts it).
    """

    def __init__(self) -> None:
        self.lengths: set[int] = set()
        self.first_token_ns: int | None = None

    def __call__(self, input_ids: Any, logits: Any) -> bool:
        if self.first_token_ns is None:
            self.first_token_ns = time.perf_counter_ns()
        self.lengths.add(len(input_ids))
        return False


@dataclass
class Job:
    """A validated request, ready to run."""

    card: ModelCard
    prompt_tokens: list[int]
    want_ctx: int
    sampling: dict[str, Any]
    max_tokens: int | None
    stop: list[str]
    seed: int
    grammar: LlamaGrammar | None
    arrived_ns: int = field(default_factory=time.perf_counter_ns)
    counter: _TokenCounter | None = None  # set when the run starts

    def sampled_tokens(self) -> int:
        """Tokens sampled so far (for logging a generation cut short by the client)."""
        return len(self.counter.lengths) if self.counter else 0


@functools.lru_cache(maxsize=8)
def _formatter(template: str, eos_token: str, bos_token: str) -> Jinja2ChatFormatter:
    """The model's chat template, compiled once (Jinja compilation costs more than rendering)."""
    return Jinja2ChatFormatter(template=template, eos_token=eos_token, bos_token=bos_token)


def _convert(name: str, value: Any, kind: type) -> Any:
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise RequestError(400, f"option {name!r} must be a number, got {value!r}")
    return kind(value)


class Engine:
    """The loaded models and the one lock that serialises all generation.

    One ``Llama`` object is not safe for concurrent use, and with 1 thread each there is nothing to gain
    from running two at once on a small machine, so a single global lock covers every model.
    """

    def __init__(self, models: dict[str, Path], threads: int = 1, n_ctx: int = 2048) -> None:
        if not models:
            raise ValueError("no models to serve")
        self.lock = threading.Lock()
        self.cards = {name: ModelCard(name, Path(path), n_ctx=n_ctx, threads=threads) for name, path in models.items()}
        self._json_grammar = LlamaGrammar.from_string(JSON_GBNF, verbose=False)

    def find(self, name: Any) -> ModelCard:
        """The model called ``name`` (``"x"`` also matches ``"x:latest"``, as in Ollama).

        Raises:
            RequestError: 400 without a name, 404 for a model that is not served.
        """
        if not isinstance(name, str) or not name.strip():
            raise RequestError(400, "model is required")
        name = name.strip()
        card = self.cards.get(name) or (self.cards.get(f"{name}:latest") if ":" not in name else None)
        if card is None:
            raise RequestError(404, f"model '{name}' not found")
        return card

    def prepare(self, body: dict[str, Any], kind: str) -> Job:
        """Validate a ``/api/chat`` (``kind="chat"``) or ``/api/generate`` body and tokenize its prompt.

        Raises:
            RequestError: unknown model (404), bad fields or a prompt longer than the context (400).
        """
        card = self.find(body.get("model"))
        if body.get("think"):
            raise RequestError(400, f'"{card.name}" does not support thinking')
        if body.get("tools"):
            raise RequestError(400, f"{card.name} does not support tools")
        options = body.get("options") or {}
        if not isinstance(options, dict):
            raise RequestError(400, "options must be an object")
        llm = card.llm  # one reference: a context reload may swap card.llm meanwhile

        if kind == "chat":
            messages = body.get("messages") or []
            if not isinstance(messages, list) or not all(
                isinstance(m, dict) and isinstance(m.get("content") or "", str) for m in messages
            ):
                raise RequestError(400, "messages must be a list of objects with string content")
            # Only role and content reach the template: images, tool calls and thinking are not supported.
            tokens = self._chat_tokens(llm, [{"role": str(m.get("role", "user")), "content": m.get("content") or ""} for m in messages])
        else:
            prompt, system = body.get("prompt") or "", body.get("system") or ""
            if not isinstance(prompt, str) or not isinstance(system, str):
                raise RequestError(400, "prompt and system must be strings")
            if body.get("raw"):
                # raw: the caller formatted the prompt itself; no template, special tokens parsed as Ollama does.
                tokens = llm.tokenize(prompt.encode("utf-8"), add_bos=True, special=True)
            else:
                msgs = ([{"role": "system", "content": system}] if system else []) + [{"role": "user", "content": prompt}]
                tokens = self._chat_tokens(llm, msgs)

        want_ctx = card.n_ctx
        if options.get("num_ctx") is not None:
            want_ctx = max(1, _convert("num_ctx", options["num_ctx"], int))
        usable_ctx = max(card.n_ctx, min(want_ctx, card.n_ctx_train))
        if len(tokens) >= usable_ctx:
            # Ollama would silently cut the prompt; refusing is safer than answering from half a context.
            raise RequestError(
                400, f"prompt is {len(tokens)} tokens, more than the context window ({usable_ctx}); raise options.num_ctx"
            )

        sampling = dict(OLLAMA_DEFAULTS)
        for name, (target, kind_) in _SAMPLING_OPTIONS.items():
            if options.get(name) is not None:
                sampling[target] = _convert(name, options[name], kind_)
        num_predict = options.get("num_predict")
        # Ollama: num_predict -1 (infinite) / -2 (fill context) / 0 all mean "no limit" -> llama_cpp's None.
        max_tokens = _convert("num_predict", num_predict, int) if num_predict is not None else None
        max_tokens = max_tokens if max_tokens and max_tokens > 0 else None
        stop = options.get("stop") or []
        stop = [stop] if isinstance(stop, str) else stop
        if not isinstance(stop, list) or not all(isinstance(s, str) for s in stop):
            raise RequestError(400, "options.stop must be a string or a list of strings")
        seed = options.get("seed")
        # Ollama's seed -1 (default) means random; llama_cpp without a seed would derive it from the last one.
        seed = _convert("seed", seed, int) if seed is not None else -1
        seed = seed if seed >= 0 else random.randrange(2**31)
        return Job(card, tokens, want_ctx, sampling, max_tokens, [s for s in stop if s], seed, self._grammar(body.get("format")))

    def _chat_tokens(self, llm: Llama, messages: list[dict[str, Any]]) -> list[int]:
        """Render ``messages`` with the model's own (GGUF) chat template and tokenize the result."""
        template = llm.metadata.get("tokenizer.chat_template")
        if not template:
            raise RequestError(400, "this model has no chat template; use /api/generate with raw=true")
        eos, bos = llm.token_eos(), llm.token_bos()
        formatter = _formatter(
            template,
            llm.detokenize([eos], special=True).decode("utf-8", "replace") if eos != -1 else "",
            llm.detokenize([bos], special=True).decode("utf-8", "replace") if bos != -1 else "",
        )
        try:
            rendered = formatter(messages=messages)
        except Exception as exc:  # the template may raise_exception() on e.g. an unsupported role
            raise RequestError(400, f"chat template failed: {exc}") from exc
        return llm.tokenize(rendered.prompt.encode("utf-8"), add_bos=not rendered.added_special, special=True)

    def _grammar(self, fmt: Any) -> LlamaGrammar | None:
        """``format``: "json" -> llama.cpp's JSON grammar; a JSON schema object -> a grammar for that schema."""
        if fmt in (None, ""):
            return None
        if fmt == "json":
            return self._json_grammar
        if isinstance(fmt, dict):
            try:
                return LlamaGrammar.from_json_schema(json.dumps(fmt), verbose=False)
            except Exception as exc:
                raise RequestError(400, f"invalid JSON schema in format: {exc}") from exc
        raise RequestError(400, f"invalid format: {fmt!r}; expected \"json\" or a JSON schema")

    def run(self, job: Job) -> Iterator[str | Summary]:
        """Generate: yield text pieces, then one :class:`Summary`.

        Holds the global lock from the first ``next()`` until the generation ends; closing the generator
        early (client gone) stops sampling and releases the lock at once.
        """
        with self.lock:
            job.card.ensure_ctx(job.want_ctx)
            llm = job.card.llm
            counter = job.counter = _TokenCounter()
            start_ns = time.perf_counter_ns()
            stream = llm.create_completion(
                prompt=job.prompt_tokens,
                stream=True,
                max_tokens=job.max_tokens,
                stop=job.stop,
                seed=job.seed,
                grammar=job.grammar,
                stopping_criteria=StoppingCriteriaList([counter]),
                **job.sampling,
            )
            done_reason = "stop"
            try:
                for chunk in stream:
                    choice = chunk["choices"][0]
                    if choice["text"]:
                        yield choice["text"]
                    if choice.get("finish_reason"):
                        done_reason = choice["finish_reason"]
            finally:
                stream.close()  # on GeneratorExit: stop sampling now, not at garbage collection
            end_ns = time.perf_counter_ns()
        first_ns = counter.first_token_ns or end_ns
        yield Summary(
            done_reason="length" if done_reason == "length" else "stop",
            prompt_eval_count=len(job.prompt_tokens),
            eval_count=len(counter.lengths),
            total_duration=end_ns - job.arrived_ns,
            # Ollama's load_duration covers waiting for the scheduler and loading; ours: lock wait + reload.
            load_duration=start_ns - job.arrived_ns,
            prompt_eval_duration=first_ns - start_ns,
            eval_duration=max(1, end_ns - first_ns),
        )
