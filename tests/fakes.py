"""Fakes for the few tests that need determinism a real model cannot give. Each sits behind the real interface."""

from __future__ import annotations

from collections.abc import Callable

from langchain_core.cross_encoders import BaseCrossEncoder
from langchain_core.language_models.fake_chat_models import GenericFakeChatModel
from langchain_core.messages import AIMessage


class FixedScoreCrossEncoder(BaseCrossEncoder):
    """Scores a passage by the first key of `scores` found in its text (default `otherwise`)."""

    name = "fixed-scores"

    def __init__(self, scores: dict[str, float], otherwise: float = 0.0) -> None:
        self.scores = scores
        self.otherwise = otherwise
        self.calls: list[list[tuple[str, str]]] = []

    def score(self, text_pairs: list[tuple[str, str]]) -> list[float]:
        self.calls.append(list(text_pairs))
        return [next((v for k, v in self.scores.items() if k in passage), self.otherwise) for _, passage in text_pairs]


class PairScoreCrossEncoder(BaseCrossEncoder):
    """Scores a pair by the first (word in question, word in passage) key of `scores` both contain."""

    name = "pair-scores"

    def __init__(self, scores: dict[tuple[str, str], float], otherwise: float = 0.0) -> None:
        self.scores = scores
        self.otherwise = otherwise

    def score(self, text_pairs: list[tuple[str, str]]) -> list[float]:
        return [next((v for (q, p), v in self.scores.items() if q in query and p in passage), self.otherwise)
                for query, passage in text_pairs]


class ScriptedChat:
    """A chat-model factory (the Pipeline's interface) whose models reply with scripted texts, in order,
    and record the messages they were sent."""

    def __init__(self, *replies: str) -> None:
        self.replies = list(replies)
        self.sent: list[list] = []

    def __call__(self, settings, **overrides) -> GenericFakeChatModel:
        reply = self.replies.pop(0)
        recorder = self

        class Recording(GenericFakeChatModel):
            def _stream(self, messages, *args, **kwargs):
                recorder.sent.append(list(messages))
                return super()._stream(messages, *args, **kwargs)

            def _generate(self, messages, *args, **kwargs):
                recorder.sent.append(list(messages))
                return super()._generate(messages, *args, **kwargs)

        return Recording(messages=iter([AIMessage(reply)]))


ChatFactory = Callable[..., GenericFakeChatModel]
