"""Text for Streamlit's markdown: escaping what documents and the LLM wrote, and linking citations to sources.

Anything a document or the LLM wrote is data. Where it must go through markdown (answers, labels, file names),
every markdown-active character is backslash-escaped, so that it shows as typed: no HTML, no links or images
fetched from a URL, no LaTeX, no Streamlit colour or icon directives. Chunk text itself is shown with `st.text`,
or, where a sentence of it is highlighted, as HTML with every character of it escaped (`ui/evidence.py`).
"""

from __future__ import annotations

import re
from collections.abc import Sequence

from rag.results import AnswerSentence
from rag.text import model_label as label_of

# Characters that mean something wherever they stand (emphasis, code, links and images, HTML, LaTeX, tables,
# strike-through, entities, Streamlit's ":red[...]" directives), and those that do only at the start of a line
# (headings, quotes, lists, rules). CommonMark lets any ASCII punctuation be backslash-escaped.
_ACTIVE = re.compile(r"([\\`*_\[\]<>$~|&:])")
_LINE_START = re.compile(r"(?m)^([ \t]*)([#>+=-]|\d+[.)])")
_CITATION = re.compile(r"\[(\s*\d{1,3}(?:\s*,\s*\d{1,3})*\s*)\]")


def escape(text: str, keep_lines: bool = True) -> str:
    """`text` as literal markdown: shown as written.

    With `keep_lines`, single line breaks stay line breaks and indentation is dropped (an indented line would
    otherwise become a code block, where escapes show); without, the text can be escaped piece by piece.
    """
    escaped = _ACTIVE.sub(r"\\\1", text)
    escaped = _LINE_START.sub(_escape_line_start, escaped)
    return _keep_lines(escaped) if keep_lines else escaped


def _keep_lines(escaped: str) -> str:
    """Line breaks of escaped markdown kept as shown. Applied once to a whole text put together from pieces, so
    that only real line starts lose their indentation (not the space after a citation)."""
    escaped = re.sub(r"(?m)^[ \t]+", "", escaped)
    # A single newline would fold into a space; two spaces before it make it a line break.
    return re.sub(r"(?<!\n)\n(?!\n)", "  \n", escaped)


def _escape_line_start(match: re.Match[str]) -> str:
    indent, mark = match.groups()
    # "1." or "1)" starts a numbered list: the punctuation after the number is what to escape.
    return f"{indent}{mark[:-1]}\\{mark[-1]}" if mark[0].isdigit() else f"{indent}\\{mark}"


def anchor(prefix: str, number: int) -> str:
    """The HTML id of source [number] under one answer (prefix tells the answers apart)."""
    return f"{prefix}-source-{number}"


def linked_answer(text: str, prefix: str, numbers: set[int]) -> str:
    """The answer as escaped markdown, each citation [n] of a shown source a link to that source's anchor."""
    return _keep_lines(_linked(text, prefix, numbers))


def _linked(text: str, prefix: str, numbers: set[int]) -> str:
    """`linked_answer` of a piece of the answer, line breaks not yet kept (see `_keep_lines`)."""
    parts: list[str] = []
    last = 0
    for match in _CITATION.finditer(text):
        parts.append(escape(text[last:match.start()], keep_lines=False))
        cited = [int(n) for n in match.group(1).split(",")]
        links = [f"[\\[{n}\\]](#{anchor(prefix, n)})" if n in numbers else f"\\[{n}\\]" for n in cited]
        parts.append(" ".join(links))
        last = match.end()
    parts.append(escape(text[last:], keep_lines=False))
    return "".join(parts)


# How an answer marks what the app found, as against what the model wrote (see `attributed_answer`).
ATTRIBUTED = "⟨{n}⟩"
UNSUPPORTED = ":orange-badge[⚠ not supported by the sources]"
# Markdown of our own (no document or LLM text in it), drawn with the same badges as the answer.
LEGEND = ("\\[n\\] cited by the model · :violet-badge[⟨n⟩] found to support the sentence, not cited by the "
          "model · :orange-badge[⚠] no source supports the sentence")
_END_PUNCTUATION = re.compile(r"[.!?…]+[\"')\]]*$")


def attributed_answer(text: str, sentences: Sequence[AnswerSentence], prefix: str, numbers: set[int]) -> str:
    """The answer as escaped markdown, sentence by sentence, with citations the reader can trust.

    The model's own citations [n] are links, as in `linked_answer`. Where the model did not cite the chunk found
    to support a sentence (`attributed`), that chunk follows as ⟨n⟩, a link too, before the sentence's full
    stop. A sentence no chunk supports gets the ⚠ mark instead, and its own citations stay unlinked: the sources
    do not back them. Text between and around the sentences is kept as written.
    """
    parts: list[str] = []
    last = 0
    for sentence in sorted(sentences, key=lambda s: s.start):
        if sentence.start < last or sentence.end > len(text):
            continue  # spans of another text: keep what is there as written
        parts.append(escape(text[last:sentence.start], keep_lines=False))
        body = text[sentence.start:sentence.end]
        if not sentence.supported:
            parts.append(f"{_linked(body, prefix, set())} {UNSUPPORTED}")
        else:
            found = [n for n in sentence.attributed if n not in sentence.cited and n in numbers]
            # A violet badge that is a link: apart from the model's plain [n] at a glance, and still clickable.
            marks = " ".join(f"[:violet-badge[{ATTRIBUTED.format(n=n)}]](#{anchor(prefix, n)})" for n in found)
            stop = _END_PUNCTUATION.search(body)
            core, tail = (body[:stop.start()], body[stop.start():]) if stop and marks else (body, "")
            parts.append(_linked(core, prefix, numbers) + (f" {marks}" if marks else "")
                         + escape(tail, keep_lines=False))
        last = sentence.end
    parts.append(escape(text[last:], keep_lines=False))
    return _keep_lines("".join(parts))


def model_label(name: str | None) -> str:
    """A model setting as a short label (`rag.text.model_label`); "?" for none."""
    return label_of(name) if name else "?"


def plural(count: int, word: str) -> str:
    """'1 chunk', '3 chunks'."""
    return f"{count} {word}" if count == 1 else f"{count} {word}s"
