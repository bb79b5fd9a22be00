"""Errors a user can act on. Each carries a one-line message and, where there is one, the fix."""

from __future__ import annotations

from pathlib import Path


class RagError(Exception):
    """Base of every error the pipeline reports to a user: message plus how to fix it."""

    def __init__(self, message: str, fix: str | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.fix = fix

    def __str__(self) -> str:
        return f"{self.message} ({self.fix})" if self.fix else self.message


class RejectedDocument(RagError):
    """A file that cannot be ingested: unsupported, empty, corrupt, encrypted, too large. Nothing was written."""


class EmbedderMismatch(RagError):
    """The collection was built with another embedding model or dimension."""


class StoreUnavailable(RagError):
    """The Chroma store cannot be opened or reached."""


class StoreBusy(StoreUnavailable):
    """Another process holds the embedded Chroma folder."""


class ModelLoadError(RagError):
    """A bi-encoder or cross-encoder could not be loaded."""


class OllamaUnreachable(RagError):
    """No Ollama server answers at the configured URL."""


class ModelNotPulled(RagError):
    """Ollama answers, but the configured model is not pulled."""


class LLMError(RagError):
    """Ollama failed while answering (other than unreachable or missing model)."""


class NoDocuments(RagError):
    """The store holds no documents yet."""


class UnknownDocument(RagError):
    """A document name that the store does not hold."""


class JudgementsError(RagError):
    """Relevance judgements that cannot be read or written: an import file with the wrong shape, a disk error."""


class CorruptJudgements(JudgementsError):
    """The saved judgements file exists but cannot be read. It is left as it is, never overwritten."""

    def __init__(self, message: str, path: Path, fix: str | None = None) -> None:
        super().__init__(message, fix)
        self.path = path


class ConversationsError(RagError):
    """Saved conversations that cannot be read or written: a locked or read-only file, an unknown conversation."""


class UnreadableConversations(ConversationsError):
    """The conversations file exists but cannot be read: corrupt, not ours, or written by a newer version of the app.
    It is left as it is, never overwritten."""

    def __init__(self, message: str, path: Path, fix: str | None = None) -> None:
        super().__init__(message, fix)
        self.path = path
