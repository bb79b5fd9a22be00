"""A saved conversation as a file to keep or share: Markdown to read, JSON with everything that was saved.

Both name every source of every answer: its number, file, page, both rankers' scores and ranks, and the chunk's
text. A source whose document was since replaced or deleted (`conversations.source_states`) says so; its text is
still the one that was sent.

What documents and the LLM wrote is data: in the Markdown, chunk texts are fenced code blocks (shown verbatim)
and questions, answers and names have every markdown-active character escaped, so that a viewer fetches no image,
follows no link and renders no HTML that a document slipped in.
"""

from __future__ import annotations

import json
import re
from collections.abc import Mapping, Sequence
from typing import Any

from ..answers.declines import DECLINED, UNSUPPORTED_ANSWER, sources_heading
from ..results import Source
from ..text import model_label
from .conversations import Conversation, SavedTurn, SourceState, now

FORMAT = "rag-conversation"
VERSION = 1
STATE_NOTES = {"replaced": "its document has been replaced since; this is the text that was sent",
               "deleted": "its document has been deleted since; this is the text that was sent"}
# Emphasis, code, links and images, HTML, tables, strike-through, maths, entities; and what starts a heading,
# quote, list or rule at the start of a line.
_ACTIVE = re.compile(r"([\\`*_\[\]<>|~$&])")
_LINE_START = re.compile(r"^([#>+=-]|\d+[.)])")


def to_dict(conversation: Conversation, turns: Sequence[SavedTurn],
            states: Mapping[str, SourceState] | None = None) -> dict[str, Any]:
    """Everything saved of the conversation; each source with its `state` when `states` is given."""
    states = states or {}
    exported = []
    for turn in turns:
        data = turn.to_dict()
        for source in data["sources"]:
            source["state"] = states.get(source["chunk_id"])
        exported.append(data)
    return {"format": FORMAT, "version": VERSION, "exported_at": now(),
            "conversation": {"id": conversation.id, "title": conversation.title,
                             "created_at": conversation.created_at, "updated_at": conversation.updated_at},
            "turns": exported}


def to_json(conversation: Conversation, turns: Sequence[SavedTurn],
            states: Mapping[str, SourceState] | None = None) -> str:
    return json.dumps(to_dict(conversation, turns, states), ensure_ascii=False, indent=1) + "\n"


def to_markdown(conversation: Conversation, turns: Sequence[SavedTurn],
                states: Mapping[str, SourceState] | None = None) -> str:
    """Questions, answers and the numbered sources of each, with file, page, scores and the chunk's text."""
    states = states or {}
    lines = [f"# {literal(conversation.title)}", "",
             f"Saved conversation `{conversation.id}`, started {conversation.created_at[:16].replace('T', ' ')} "
             f"UTC; {len(turns)} question{'s' if len(turns) != 1 else ''}. Exported {now()[:16].replace('T', ' ')} "
             "UTC from Chat with your documents. Under each answer, the chunks it was given, numbered as cited.", ""]
    for turn in turns:
        lines += [f"## {turn.number}. {literal(turn.question)}", ""]
        if turn.rewritten:
            lines += [f"*Searched for:* {literal(turn.standalone_question)}", ""]
        if turn.rerank_notice:
            lines += [f"*Not reranked:* {literal(turn.rerank_notice)}", ""]
        lines += _answer(turn)
        if turn.sources:
            lines += [f"### {sources_heading(turn.outcome)}", ""]
            for source in turn.sources:
                lines += _source(source, turn, states.get(source.chunk_id))
    return "\n".join(lines).rstrip("\n") + "\n"


def _answer(turn: SavedTurn) -> list[str]:
    lines: list[str] = []
    if turn.outcome == "not_covered":
        lines += [f"> {literal(turn.answer)}", ""]
    elif turn.outcome in ("declined", "unsupported"):
        message = DECLINED if turn.outcome == "declined" else UNSUPPORTED_ANSWER
        lines += [f"**{message}** It wrote:", "", literal(turn.answer, lines=True), ""]
    elif turn.answer:
        lines += [literal(turn.answer, lines=True), ""]
    elif not turn.error:
        lines += ["*Stopped before the answer began.*", ""]
    if turn.cut_off:
        lines += ["*The answer was cut off here.*", ""]
    if turn.error:
        lines += [f"**Error:** {literal(turn.error)}" + (f" **Fix:** {literal(turn.fix)}" if turn.fix else ""), ""]
    return lines


def _source(source: Source, turn: SavedTurn, state: SourceState | None) -> list[str]:
    first = "fused bi-encoder + BM25" if turn.hybrid else "bi-encoder"
    scores = f"{first} {source.bi_score:.4f} (#{source.bi_rank})"
    if source.ce_score is not None:
        reranker = f"{model_label(turn.reranker)} " if turn.reranker else ""
        scores += f" · cross-encoder {reranker}{source.ce_score:.4f} (#{source.ce_rank})"
    else:
        scores += " · not reranked"
    label = f"[{source.number}] {source.location}" if source.number else source.location
    lines = [f"**{literal(label)}**  ", literal(scores), ""]
    if state in STATE_NOTES:
        lines += [f"*⚠ {STATE_NOTES[state]}*", ""]
    sent = turn.sent.get(source.number or 0)
    if sent is not None and sent.strip() != source.text.strip():
        lines += ["What the LLM read of it:", "", *fenced(sent), ""]
        lines += ["The whole chunk:", ""]
    lines += [*fenced(source.text), ""]
    return lines


def literal(text: str | None, lines: bool = False) -> str:
    """`text` with every markdown-active character backslash-escaped: on one line, or with `lines` its line breaks
    kept (and indentation dropped, which would make a code block)."""
    if not lines:
        return _escape(" ".join(str(text or "").split()))
    kept = [_escape(line.strip()) for line in str(text or "").strip().splitlines()]
    return "\n".join(f"{line}  " if line and i + 1 < len(kept) and kept[i + 1] else line
                     for i, line in enumerate(kept))


def _escape(line: str) -> str:
    escaped = _ACTIVE.sub(r"\\\1", line)
    return _LINE_START.sub(lambda m: m.group(1)[:-1] + "\\" + m.group(1)[-1], escaped)


def fenced(text: str) -> list[str]:
    """`text` as a fenced block, its fence longer than any run of backticks in it."""
    longest = max((len(run) for run in re.findall(r"`+", text)), default=0)
    fence = "`" * max(3, longest + 1)
    return [f"{fence}text", text.rstrip("\n"), fence]
