"""Text for Streamlit's markdown: escaping what documents and the LLM wrote, and linking citations to sources.

Anything a document or the LLM wrote is data. Where it must go through markdown (answers, labels, file names),
every markdown-active character is backslash-escaped, so that it shows as typed: no HTML, no links or images
fetched from a URL, no LaTeX, no Streamlit colour or icon directives. Chunk text itself is shown with `st.text`.
"""

from __future__ import annotations

import re
from pathlib import Path

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
    if not keep_lines:
        return escaped
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
    parts: list[str] = []
    last = 0
    for match in _CITATION.finditer(text):
        parts.append(escape(text[last:match.start()]))
        cited = [int(n) for n in match.group(1).split(",")]
        links = [f"[\\[{n}\\]](#{anchor(prefix, n)})" if n in numbers else f"\\[{n}\\]" for n in cited]
        parts.append(" ".join(links))
        last = match.end()
    parts.append(escape(text[last:]))
    return "".join(parts)


def model_label(name: str | None) -> str:
    """A model setting as a short label: a hub id as given, a local folder by its folder name."""
    if not name:
        return "?"
    path = Path(name)
    return path.name if name.startswith(("/", ".", "~")) or path.is_dir() else name


def plural(count: int, word: str) -> str:
    """'1 chunk', '3 chunks'."""
    return f"{count} {word}" if count == 1 else f"{count} {word}s"


def snippet(text: str, width: int = 120) -> str:
    flat = " ".join(text.split())
    return flat if len(flat) <= width else flat[: width - 1] + "…"
