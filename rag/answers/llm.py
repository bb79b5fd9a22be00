"""The LLM adapter: ChatOllama for answers, the official ollama client for health, and Ollama's failures
translated into errors that say what to do."""

from __future__ import annotations

from dataclasses import dataclass, field

from langchain_core.language_models import BaseChatModel

from ..errors import LLMError, ModelNotPulled, OllamaUnreachable, RagError
from ..settings import Settings


def make_chat_model(settings: Settings, model: str | None = None, num_predict: int | None = None) -> BaseChatModel:
    from langchain_ollama import ChatOllama

    return ChatOllama(
        model=model or settings.ollama_model,
        base_url=settings.ollama_url,
        temperature=settings.temperature,
        num_ctx=settings.num_ctx,
        num_predict=num_predict or settings.num_predict,
        client_kwargs={"timeout": settings.llm_timeout},
    )


@dataclass
class OllamaStatus:
    url: str
    model: str
    reachable: bool
    version: str | None = None
    models: list[str] = field(default_factory=list)
    error: str | None = None

    @property
    def model_pulled(self) -> bool:
        return model_is_listed(self.model, self.models)

    def problem(self) -> RagError | None:
        """None when the model can answer, else the error a user should see."""
        if not self.reachable:
            return unreachable(self.url)
        if not self.model_pulled:
            return not_pulled(self.model, self.models)
        return None


def model_is_listed(name: str, models: list[str]) -> bool:
    # Ollama names without a tag mean ":latest".
    wanted = name if ":" in name else f"{name}:latest"
    return name in models or wanted in models


def check_ollama(settings: Settings, timeout: float = 5.0) -> OllamaStatus:
    """Ask the server for its version and pulled models; never raises."""
    import httpx
    import ollama

    client = ollama.Client(host=settings.ollama_url, timeout=timeout)
    status = OllamaStatus(url=settings.ollama_url, model=settings.ollama_model, reachable=False)
    try:
        answer = httpx.get(f"{settings.ollama_url.rstrip('/')}/api/version", timeout=timeout)
        answer.raise_for_status()
        status.version = answer.json().get("version")
        status.models = [m.model for m in client.list().models if m.model]
        status.reachable = True
    except Exception as exc:  # connection refused, timeouts, a non-Ollama server answering
        status.error = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
    return status


def unreachable(url: str) -> OllamaUnreachable:
    return OllamaUnreachable(
        f"Ollama is not reachable at {url}",
        fix="start it with `ollama serve` (or `python -m ollama_standin` here), or set RAG_OLLAMA_URL",
    )


def not_pulled(model: str, available: list[str] | None = None) -> ModelNotPulled:
    have = f"; pulled: {', '.join(available)}" if available else ""
    return ModelNotPulled(f"the Ollama model '{model}' is not pulled{have}",
                          fix=f"run `ollama pull {model}`, or set RAG_OLLAMA_MODEL")


def translate_error(exc: BaseException, settings: Settings, model: str | None = None) -> RagError:
    """Map what ChatOllama raises (httpx, ollama.ResponseError) to a RagError with the fix."""
    import httpx
    import ollama

    if isinstance(exc, RagError):
        return exc
    if isinstance(exc, (httpx.ConnectError, httpx.ConnectTimeout, ConnectionError)):
        return unreachable(settings.ollama_url)
    if isinstance(exc, ollama.ResponseError) and exc.status_code == 404:
        return not_pulled(model or settings.ollama_model)
    if isinstance(exc, (httpx.ReadError, httpx.RemoteProtocolError, httpx.ReadTimeout)):
        return LLMError(f"the connection to Ollama at {settings.ollama_url} broke off while answering "
                        f"({type(exc).__name__})", fix="check that Ollama is still running, then ask again")
    text = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
    return LLMError(f"Ollama failed: {text[:200]}")
