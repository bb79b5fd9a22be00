"""Helpers for tests: start the stand-in as a real subprocess on a free loopback port, and stop it.

Usage (e.g. in a pytest fixture)::

    url, proc = start_standin()
    try:
        ollama.Client(host=url).chat(model="smollm2:135m", messages=[...])
    finally:
        stop_standin(proc)
"""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from pathlib import Path
from typing import IO, Any

from ollama_standin.models import DEFAULT_MODEL_NAME

_REPO_ROOT = Path(__file__).resolve().parent.parent


def free_port() -> int:
    """A TCP port free on 127.0.0.1 right now (the usual bind-to-0 trick; tiny race, fine for tests)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def start_standin(
    port: int | None = None,
    *,
    model_name: str = DEFAULT_MODEL_NAME,
    gguf: str | Path | None = None,
    stderr: IO[Any] | int | None = None,
    timeout: float = 180.0,
) -> tuple[str, subprocess.Popen[bytes]]:
    """Start ``python -m ollama_standin`` on 127.0.0.1 and wait until ``GET /`` answers.

    Args:
        port: port to bind; a free one when None.
        model_name, gguf: passed to ``--model-name`` / ``--gguf``.
        stderr: where the server's log lines go (a file object, ``subprocess.DEVNULL``...); inherited
            when None. Do not pass ``subprocess.PIPE`` unless something reads it: a full pipe blocks the server.
        timeout: seconds to wait for the server to answer (model load plus interpreter start; generous
            because CPUs may be shared).

    Returns:
        ``(url, process)``, e.g. ``("http://127.0.0.1:40123", <Popen>)``; stop it with :func:`stop_standin`.

    Raises:
        RuntimeError: the server exited or did not answer within ``timeout``.
    """
    port = port or free_port()
    cmd = [sys.executable, "-m", "ollama_standin", "--host", "127.0.0.1", "--port", str(port), "--model-name", model_name]
    if gguf is not None:
        cmd += ["--gguf", str(gguf)]
    env = dict(os.environ)
    # Make the package importable whatever the caller's working directory is.
    env["PYTHONPATH"] = os.pathsep.join(p for p in (str(_REPO_ROOT), env.get("PYTHONPATH", "")) if p)
    proc = subprocess.Popen(cmd, env=env, stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=stderr)
    url = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + timeout
    while True:
        if proc.poll() is not None:
            raise RuntimeError(f"ollama_standin exited with code {proc.returncode} before answering (see its stderr)")
        try:
            with urllib.request.urlopen(url + "/", timeout=2) as resp:
                if resp.status == 200:
                    return url, proc
        except (urllib.error.URLError, OSError):
            pass
        if time.monotonic() > deadline:
            stop_standin(proc)
            raise RuntimeError(f"ollama_standin did not answer on {url} within {timeout:.0f}s")
        time.sleep(0.2)


def stop_standin(proc: subprocess.Popen[bytes], timeout: float = 15.0) -> None:
    """Terminate the server started by :func:`start_standin` (SIGTERM, then SIGKILL) and reap it."""
    if proc.poll() is None:
        proc.terminate()
        try:
            proc.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(timeout=timeout)
