"""The HTTP side: a FastAPI app that speaks the part of Ollama's API an app uses.

Field names and status codes follow Ollama's ``docs/api.md``: ``/api/chat`` and ``/api/generate`` stream
NDJSON (one object per piece of text, the last with ``"done": true`` and the counts) unless
``"stream": false``; an unknown model is a 404 ``{"error": "model 'x' not found"}`` sent before any
streaming starts, which the ``ollama`` client raises as ``ResponseError(status_code=404)``.
"""

from __future__ import annotations

import json
import logging
import time
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any

import anyio
from fastapi import FastAPI, Request
from fastapi.responses import JSONResponse, PlainTextResponse, Response, StreamingResponse
from starlette.concurrency import run_in_threadpool
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from ollama_standin import __version__
from ollama_standin.engine import Engine, Job, RequestError, Summary
from ollama_standin.modelinfo import rfc3339

log = logging.getLogger("ollama_standin")

# What /api/version reports: a plain release number, because clients compare it as a version; the
# "server" key tells a human that this is not a real Ollama.
OLLAMA_API_VERSION = "0.12.0"


class _AccessLog:
    """One stderr line per request, written when the response (streamed ones included) has ended.

    Handlers add details (model, token counts, tokens/s) via ``request.state.log``.
    """

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        state = scope.setdefault("state", {})
        started, status = time.perf_counter(), [0]

        async def send_and_note(message: Message) -> None:
            if message["type"] == "http.response.start":
                status[0] = message["status"]
            await send(message)

        try:
            await self.app(scope, receive, send_and_note)
        finally:
            client = scope.get("client") or ("-", 0)
            line = f'{client[0]} "{scope["method"]} {scope["path"]}" {status[0] or "-"} {time.perf_counter() - started:.2f}s'
            log.info("%s", f"{line} {state['log']}" if state.get("log") else line)


class _ClosingStreamingResponse(StreamingResponse):
    """A StreamingResponse that always closes its body iterator.

    Starlette stops sending when the client goes away but leaves the iterator to garbage collection;
    closing it here stops generation and releases the model lock straight away.
    """

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        try:
            await super().__call__(scope, receive, send)
        finally:
            with anyio.CancelScope(shield=True):
                await self.body_iterator.aclose()  # type: ignore[union-attr]


def _line(obj: dict[str, Any]) -> bytes:
    return (json.dumps(obj, ensure_ascii=False) + "\n").encode("utf-8")


def _stats(job: Job, summary: Summary | None) -> str:
    if summary is None:  # client went away mid-stream
        return f"model={job.card.name} prompt_tokens={len(job.prompt_tokens)} eval_count={job.sampled_tokens()} done_reason=disconnected"
    rate = summary.eval_count / (summary.eval_duration / 1e9)
    return (
        f"model={job.card.name} prompt_tokens={summary.prompt_eval_count} eval_count={summary.eval_count} "
        f"done_reason={summary.done_reason} tokens/s={rate:.1f}"
    )


def create_app(models: dict[str, Path], threads: int = 1, n_ctx: int = 2048) -> FastAPI:
    """Build the app serving ``models`` (``{"smollm2:135m": Path("...gguf")}``).

    Every model is loaded here, before the app is returned, with ``n_threads=threads`` and a context of
    ``n_ctx`` tokens (grown on demand when a request asks for a larger ``options.num_ctx``).
    All generation is serialised by one lock. Nothing here binds a socket; see ``__main__``.
    """
    engine = Engine(models, threads=threads, n_ctx=n_ctx)
    app = FastAPI(title="ollama_standin", version=__version__, docs_url=None, redoc_url=None, openapi_url=None)
    app.state.engine = engine
    app.add_middleware(_AccessLog)

    @app.exception_handler(RequestError)
    async def _request_error(request: Request, exc: RequestError) -> JSONResponse:
        request.state.log = f"error={exc.message!r}"
        return JSONResponse({"error": exc.message}, status_code=exc.status)

    @app.exception_handler(Exception)
    async def _unexpected(request: Request, exc: Exception) -> JSONResponse:
        # Ollama's clients expect {"error": ...} on any failure; uvicorn still logs the traceback.
        return JSONResponse({"error": f"{type(exc).__name__}: {exc}"}, status_code=500)

    async def json_body(request: Request) -> dict[str, Any]:
        raw = await request.body()
        if not raw.strip():
            raise RequestError(400, "missing request body")
        try:
            body = json.loads(raw)
        except (json.JSONDecodeError, UnicodeDecodeError) as exc:
            raise RequestError(400, f"invalid JSON: {exc}") from exc
        if not isinstance(body, dict):
            raise RequestError(400, "request body must be a JSON object")
        return body

    @app.api_route("/", methods=["GET", "HEAD"])
    async def root() -> Response:
        return PlainTextResponse("Ollama is running")

    @app.get("/api/version")
    async def version() -> dict[str, str]:
        return {"version": OLLAMA_API_VERSION, "server": f"ollama_standin {__version__}"}

    @app.get("/api/tags")
    async def tags() -> dict[str, Any]:
        # run_in_threadpool: the first call hashes the GGUF file for its digest.
        return {"models": await run_in_threadpool(lambda: [c.tag_entry() for c in engine.cards.values()])}

    @app.get("/api/ps")
    async def ps() -> dict[str, Any]:
        return {"models": await run_in_threadpool(lambda: [c.ps_entry() for c in engine.cards.values()])}

    @app.post("/api/show")
    async def show(request: Request) -> dict[str, Any]:
        body = await json_body(request)
        card = engine.find(body.get("model") or body.get("name"))  # "name" is the older spelling
        return card.show()

    @app.post("/api/chat")
    async def chat(request: Request) -> Response:
        return await generate_response(request, await json_body(request), "chat")

    @app.post("/api/generate")
    async def generate(request: Request) -> Response:
        return await generate_response(request, await json_body(request), "generate")

    async def generate_response(request: Request, body: dict[str, Any], kind: str) -> Response:
        # keep_alive is accepted and ignored: models stay loaded for the life of the process.
        card = engine.find(body.get("model"))
        text_key = "message" if kind == "chat" else "response"

        def piece(text: str) -> dict[str, Any]:
            content: Any = {"role": "assistant", "content": text} if kind == "chat" else text
            return {"model": card.name, "created_at": rfc3339(), text_key: content, "done": False}

        if not body.get("messages" if kind == "chat" else "prompt"):
            # As Ollama: an empty request just (pre)loads the model and answers done_reason "load".
            request.state.log = f"model={card.name} done_reason=load"
            return JSONResponse({**piece(""), "done": True, "done_reason": "load"})

        job = await run_in_threadpool(engine.prepare, body, kind)
        gen = engine.run(job)
        if body.get("stream") is False:
            text, summary = await run_in_threadpool(_collect, gen)
            request.state.log = _stats(job, summary)
            return JSONResponse({**piece(text), "done": True, **summary.fields()})
        return _ClosingStreamingResponse(
            _ndjson(request, job, gen, piece), media_type="application/x-ndjson"
        )

    return app


def _collect(gen: Iterator[str | Summary]) -> tuple[str, Summary]:
    parts: list[str] = []
    for item in gen:
        if isinstance(item, Summary):
            return "".join(parts), item
        parts.append(item)
    raise RuntimeError("generation ended without a summary")


async def _ndjson(request: Request, job: Job, gen: Iterator[str | Summary], piece: Any) -> AsyncIterator[bytes]:
    """Drive the (blocking) generation generator from worker threads, one ``next()`` per piece.

    ``finally`` closes it even when the client disconnected and we were cancelled; that stops sampling
    and releases the engine lock.
    """
    summary: Summary | None = None
    try:
        while (item := await run_in_threadpool(next, gen, None)) is not None:
            if isinstance(item, Summary):
                summary = item
                yield _line({**piece(""), "done": True, **item.fields()})
            else:
                yield _line(piece(item))
    except Exception as exc:  # headers are gone already: report in-stream, as Ollama does
        log.exception("generation failed")
        yield _line({"error": str(exc)})
    finally:
        with anyio.CancelScope(shield=True):
            await run_in_threadpool(gen.close)
        request.state.log = _stats(job, summary)
