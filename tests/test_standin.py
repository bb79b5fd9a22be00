"""The stand-in Ollama server, exercised as a real subprocess through the official clients.

Everything here talks HTTP to ``python -m ollama_standin`` on a free loopback port, through
``ollama.Client`` and ``langchain_ollama.ChatOllama``, the way the app talks to a real Ollama.
The model is SmolLM2-135M: tests check facts and protocol, not style.
"""

from __future__ import annotations

import json
import re
import tempfile
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import ollama
import pytest

from ollama_standin.testing import start_standin, stop_standin

MODEL = "smollm2:135m"
GREEDY = {"temperature": 0, "seed": 1}  # deterministic answers
REFUND_MESSAGES = [
    {"role": "system", "content": "Answer the question using only the context."},
    {"role": "user", "content": "Context: A refund takes 14 days to process.\nQuestion: How many days does a refund take?"},
]


@pytest.fixture(scope="module")
def standin() -> Iterator[tuple[str, Path]]:
    """``(url, log_path)`` of a stand-in server started for this module, stopped at the end."""
    with tempfile.TemporaryDirectory() as tmp:
        log_path = Path(tmp) / "standin.log"
        with log_path.open("wb") as log_file:
            url, proc = start_standin(stderr=log_file)
            try:
                yield url, log_path
            finally:
                stop_standin(proc)


@pytest.fixture()
def url(standin: tuple[str, Path]) -> str:
    return standin[0]


@pytest.fixture()
def client(url: str) -> ollama.Client:
    return ollama.Client(host=url)


def test_root_and_version(url: str) -> None:
    # The ollama python client has no version() call; apps and `ollama -v` use GET /api/version.
    with httpx.Client(base_url=url) as http:
        root = http.get("/")
        assert root.status_code == 200 and root.text == "Ollama is running"
        assert http.head("/").status_code == 200
        version = http.get("/api/version").json()["version"]
    assert re.fullmatch(r"\d+\.\d+\.\d+", version)


def test_list_shows_only_the_bundled_model(client: ollama.Client) -> None:
    models = client.list().models
    assert [m.model for m in models] == [MODEL]
    (entry,) = models
    assert entry.size and entry.size > 50_000_000
    assert entry.digest and re.fullmatch(r"[0-9a-f]{64}", entry.digest)
    assert entry.modified_at is not None
    assert entry.details and entry.details.format == "gguf" and entry.details.family == "llama"
    assert entry.details.parameter_size and entry.details.parameter_size.endswith("M")
    assert entry.details.quantization_level == "Q4_1"


def test_show_and_ps(client: ollama.Client) -> None:
    info = client.show(MODEL)
    assert info.capabilities == ["completion"]
    assert info.details and info.details.format == "gguf"
    assert info.modelinfo and info.modelinfo["general.architecture"] == "llama"
    assert isinstance(info.modelinfo["llama.context_length"], int)
    assert info.template and "<|im_start|>" in info.template
    assert info.parameters and "num_ctx" in info.parameters
    running = client.ps().models
    assert [m.model for m in running] == [MODEL]
    assert running[0].context_length and running[0].context_length >= 2048


def test_chat_not_streamed(client: ollama.Client) -> None:
    resp = client.chat(model=MODEL, messages=REFUND_MESSAGES, stream=False, options={**GREEDY, "num_predict": 48})
    assert resp.done is True and resp.done_reason in ("stop", "length")
    assert resp.message.role == "assistant" and resp.message.content.strip()
    assert resp.prompt_eval_count and resp.prompt_eval_count > 20
    assert resp.eval_count and 0 < resp.eval_count <= 48
    for duration in (resp.total_duration, resp.eval_duration, resp.prompt_eval_duration, resp.load_duration):
        assert duration is not None and duration >= 0


def test_chat_streamed(client: ollama.Client) -> None:
    chunks = list(client.chat(model=MODEL, messages=REFUND_MESSAGES, stream=True, options={**GREEDY, "num_predict": 48}))
    assert len(chunks) > 2
    *body, last = chunks
    assert all(c.done is False and c.message.role == "assistant" for c in body)
    text = "".join(c.message.content for c in body)
    assert text.strip()
    assert last.done is True and last.done_reason in ("stop", "length")
    assert last.message.content == ""
    assert last.eval_count and last.eval_count >= len(body) - 1  # a chunk may carry several tokens, never less than one
    assert last.prompt_eval_count and last.eval_duration and last.total_duration
    # Streamed and not streamed give the same greedy answer.
    whole = client.chat(model=MODEL, messages=REFUND_MESSAGES, stream=False, options={**GREEDY, "num_predict": 48})
    assert whole.message.content == text


def test_raw_http_streams_ndjson_by_default(url: str) -> None:
    body = {"model": MODEL, "prompt": "Say hello.", "options": {**GREEDY, "num_predict": 8}}  # no "stream" key
    with httpx.Client(base_url=url, timeout=60) as http:
        resp = http.post("/api/generate", json=body)
    assert resp.status_code == 200 and resp.headers["content-type"].startswith("application/x-ndjson")
    objects = [json.loads(line) for line in resp.text.splitlines()]
    assert len(objects) > 1 and [o["done"] for o in objects].count(True) == 1 and objects[-1]["done"] is True
    assert objects[-1]["eval_count"] == 8 and objects[-1]["done_reason"] == "length"
    assert all(re.fullmatch(r"\d{4}-\d\d-\d\dT[\d:.]+Z", o["created_at"]) for o in objects)


def test_generate(client: ollama.Client) -> None:
    resp = client.generate(model=MODEL, prompt="What is the capital of France?", options={**GREEDY, "num_predict": 32})
    assert resp.done is True and resp.response.strip() and resp.eval_count
    assert "Paris" in resp.response
    parts = list(client.generate(model=MODEL, prompt="What is the capital of France?", stream=True, options={**GREEDY, "num_predict": 32}))
    assert parts[-1].done is True and parts[-1].done_reason in ("stop", "length")
    assert "".join(p.response for p in parts) == resp.response


def test_generate_system_and_raw(client: ollama.Client) -> None:
    with_system = client.generate(
        model=MODEL, system="Answer the question using only the context.",
        prompt="Context: The office is in Oslo.\nQuestion: In which city is the office?", options={**GREEDY, "num_predict": 32},
    )
    assert "Oslo" in with_system.response
    raw_prompt = "<|im_start|>user\nWhat is the capital of France?<|im_end|>\n<|im_start|>assistant\n"
    raw = client.generate(model=MODEL, prompt=raw_prompt, raw=True, options={**GREEDY, "num_predict": 32})
    templated = client.generate(model=MODEL, prompt="What is the capital of France?", options={**GREEDY, "num_predict": 32})
    # The templated prompt has the default system message; both must still answer.
    assert "Paris" in raw.response and "Paris" in templated.response
    assert raw.prompt_eval_count is not None and templated.prompt_eval_count is not None
    assert raw.prompt_eval_count < templated.prompt_eval_count


def test_factual_answer_from_context(client: ollama.Client) -> None:
    resp = client.chat(model=MODEL, messages=REFUND_MESSAGES, options={**GREEDY, "num_predict": 64})
    assert "14" in resp.message.content


@pytest.mark.parametrize("call", ["chat", "chat-stream", "generate", "show"])
def test_unknown_model_is_404(client: ollama.Client, call: str) -> None:
    with pytest.raises(ollama.ResponseError) as err:
        if call == "chat":
            client.chat(model="no-such-model:7b", messages=[{"role": "user", "content": "hi"}])
        elif call == "chat-stream":
            list(client.chat(model="no-such-model:7b", messages=[{"role": "user", "content": "hi"}], stream=True))
        elif call == "generate":
            client.generate(model="no-such-model:7b", prompt="hi")
        else:
            client.show("no-such-model:7b")
    assert err.value.status_code == 404
    assert err.value.error == "model 'no-such-model:7b' not found"


def test_bad_requests_are_400(url: str) -> None:
    with httpx.Client(base_url=url) as http:
        bad_json = http.post("/api/chat", content=b"{not json", headers={"content-type": "application/json"})
        assert bad_json.status_code == 400 and "error" in bad_json.json()
        no_model = http.post("/api/chat", json={"messages": [{"role": "user", "content": "hi"}]})
        assert no_model.status_code == 400 and no_model.json() == {"error": "model is required"}
        bad_option = http.post("/api/generate", json={"model": MODEL, "prompt": "hi", "options": {"temperature": "hot"}})
        assert bad_option.status_code == 400 and "temperature" in bad_option.json()["error"]


def test_prompt_longer_than_context_is_refused_before_streaming(client: ollama.Client) -> None:
    # Ollama would silently truncate; the stand-in refuses (400) rather than answer from a cut context.
    too_long = "word " * 9000  # beyond even SmolLM2's 8192-token training context
    with pytest.raises(ollama.ResponseError) as err:
        list(client.chat(model=MODEL, messages=[{"role": "user", "content": too_long}], stream=True, options={"num_ctx": 8192}))
    assert err.value.status_code == 400 and "context window" in err.value.error


def test_num_ctx_grows_the_context(client: ollama.Client) -> None:
    # 2048 tokens are loaded at start; a bigger options.num_ctx reloads the model with that context (a short
    # prompt: a prompt really over 2048 tokens costs ~15 s of prompt evaluation on one shared core).
    resp = client.chat(model=MODEL, messages=REFUND_MESSAGES, options={**GREEDY, "num_ctx": 4096, "num_predict": 64})
    assert "14" in resp.message.content
    assert client.ps().models[0].context_length == 4096
    # Contexts only grow: a smaller num_ctx afterwards runs in the loaded 4096 without reloading.
    client.chat(model=MODEL, messages=REFUND_MESSAGES, options={**GREEDY, "num_ctx": 1024, "num_predict": 8})
    assert client.ps().models[0].context_length == 4096


def test_num_predict_limits_tokens(client: ollama.Client) -> None:
    resp = client.chat(
        model=MODEL, messages=[{"role": "user", "content": "Write a long story about a dragon."}],
        options={**GREEDY, "num_predict": 5},
    )
    assert resp.eval_count == 5 and resp.done_reason == "length"
    assert resp.message.content.strip()


def test_stop_sequence(client: ollama.Client) -> None:
    messages = [{"role": "user", "content": "Count from 1 to 10, separated by commas."}]
    free = client.chat(model=MODEL, messages=messages, options={**GREEDY, "num_predict": 64}).message.content
    assert "5" in free  # the unconstrained answer goes past 5 ...
    stopped = client.chat(model=MODEL, messages=messages, options={**GREEDY, "num_predict": 64, "stop": ["5"]})
    assert stopped.done_reason == "stop"
    assert "5" not in stopped.message.content  # ... the stop string cuts it before 5, and is not included
    assert free.startswith(stopped.message.content)


def test_format_json_and_schema(client: ollama.Client) -> None:
    messages = [{"role": "user", "content": 'Reply in JSON with the keys "city" and "country" for the capital of France.'}]
    loose = client.chat(model=MODEL, format="json", messages=messages, options={**GREEDY, "num_predict": 128})
    assert loose.done_reason == "stop"
    assert isinstance(json.loads(loose.message.content), dict)
    schema = {
        "type": "object",
        "properties": {"city": {"type": "string"}, "country": {"type": "string"}},
        "required": ["city", "country"],
        "additionalProperties": False,
    }
    strict = client.chat(model=MODEL, format=schema, messages=messages, options={**GREEDY, "num_predict": 128})
    answer = json.loads(strict.message.content)
    assert set(answer) == {"city", "country"} and answer["city"] == "Paris"


def test_langchain_chat_ollama_stream(url: str) -> None:
    from langchain_ollama import ChatOllama

    llm = ChatOllama(model=MODEL, base_url=url, validate_model_on_init=True, temperature=0, seed=1, num_predict=64)
    chunks = list(llm.stream([("system", REFUND_MESSAGES[0]["content"]), ("human", REFUND_MESSAGES[1]["content"])]))
    text = "".join(str(c.content) for c in chunks)
    assert "14" in text
    merged = chunks[0]
    for chunk in chunks[1:]:
        merged += chunk  # LangChain merges the final Ollama object's fields into response_metadata
    assert merged.response_metadata.get("done_reason") in ("stop", "length")
    assert merged.usage_metadata and merged.usage_metadata["output_tokens"] > 0
    assert llm.invoke("What is the capital of France?").content


def test_langchain_validate_unknown_model_raises(url: str) -> None:
    from langchain_ollama import ChatOllama

    # pydantic's ValidationError is a ValueError; langchain_ollama raises it at construction.
    with pytest.raises(ValueError, match="not found"):
        ChatOllama(model="no-such-model:7b", base_url=url, validate_model_on_init=True)


def test_two_concurrent_streams_both_complete(client: ollama.Client, url: str) -> None:
    questions = [
        [{"role": "user", "content": "Context: The office is in Oslo.\nQuestion: In which city is the office?"}],
        REFUND_MESSAGES,
    ]
    options = {**GREEDY, "num_predict": 48}
    expected = [client.chat(model=MODEL, messages=m, options=options).message.content for m in questions]
    results: list[tuple[str, bool] | BaseException | None] = [None, None]
    barrier = threading.Barrier(2)

    def worker(i: int) -> None:
        try:
            own = ollama.Client(host=url)  # one connection per thread
            barrier.wait()
            chunks = list(own.chat(model=MODEL, messages=questions[i], stream=True, options=options))
            results[i] = ("".join(c.message.content for c in chunks), bool(chunks[-1].done))
        except BaseException as exc:  # surfaced by the assertion below
            results[i] = exc

    threads = [threading.Thread(target=worker, args=(i,)) for i in range(2)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    # Serialised on one model, each stream still gets its full, uncorrupted (greedy, hence identical) answer.
    assert results == [(expected[0], True), (expected[1], True)]


def test_client_disconnect_stops_generation(standin: tuple[str, Path], client: ollama.Client) -> None:
    url, log_path = standin
    body = {
        "model": MODEL, "stream": True, "options": {**GREEDY, "num_predict": 1500},
        "messages": [{"role": "user", "content": "Count from 1 to 1000, one number per line."}],
    }
    with httpx.Client(base_url=url, timeout=60) as http:
        with http.stream("POST", "/api/chat", json=body) as resp:
            assert resp.status_code == 200
            lines = resp.iter_lines()
            for _ in range(3):
                assert json.loads(next(lines))["done"] is False
        # leaving the block closes the connection mid-stream
    # The server logs the abandoned request once it has stopped; wait for that line (not a timing check).
    deadline = time.monotonic() + 120
    while "done_reason=disconnected" not in log_path.read_text() and time.monotonic() < deadline:
        time.sleep(0.2)
    line = next(ln for ln in log_path.read_text().splitlines() if "done_reason=disconnected" in ln)
    eval_count = int(re.search(r"eval_count=(\d+)", line).group(1))  # type: ignore[union-attr]
    assert eval_count < 1500
    # The model lock was released: the next request is served.
    assert client.chat(model=MODEL, messages=REFUND_MESSAGES, options={**GREEDY, "num_predict": 8}).done
