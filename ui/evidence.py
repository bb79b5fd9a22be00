"""Evidence as the pages show it: the sentence of a sent chunk that best answers the question, highlighted in the
text around it, with its score.

Everything here is HTML for `st.html`. Document text (chunk text, file names) always goes through `html.escape`;
the only markup is ours: the layout, the <mark>, and anchor ids made of our own prefix and number.
"""

from __future__ import annotations

import html
import re
from collections.abc import Mapping, Sequence

from rag.answers.evidence import best_evidence
from rag.results import Evidence, Source

from .text import anchor

_MARK = "background:#ffe27a;color:#1f1f1f;padding:0 .15em;border-radius:.2em"
_CONTEXT = "opacity:.72"
_LABEL = "font-size:.8rem;opacity:.7;margin-bottom:.15rem"


def scorer_label(reranked: bool) -> str:
    """What scored the sentences: the cross-encoder when the question was reranked, else the bi-encoder's cosine
    (the pipeline never loads the cross-encoder for a question asked without it)."""
    return "cross-encoder" if reranked else "bi-encoder cosine"


def _flat(text: str) -> str:
    return re.sub(r"\s+", " ", text)


# Where a sentence ends inside the surroundings, so that a cut falls between sentences when it can.
_SENTENCE_GAP = re.compile(r"(?<=[.!?])[\"')\]]*\s+|\n\s*\n")


def around(text: str, evidence: Evidence, chars: int) -> tuple[str, str, str]:
    """(before, sentence, after): the evidence sentence of `text` with up to `chars` characters of the chunk on
    either side, cut between sentences where one ends in that span (else between words) and marked '…' where
    cut; white space folded to single spaces."""
    start, end = max(0, evidence.start), min(len(text), evidence.end)
    before, after = text[max(0, start - chars):start], text[end:end + chars]
    if start - chars > 0:
        gap = next((g for g in _SENTENCE_GAP.finditer(before) if before[g.end():].strip()), None)
        words = before.split(None, 1)
        before = "… " + (before[gap.end():] if gap else words[1] if len(words) > 1 else before).lstrip()
    if end + chars < len(text):
        gaps = [g for g in _SENTENCE_GAP.finditer(after.rstrip()) if after[:g.start()].strip()]
        words = after.rsplit(None, 1)
        after = (after[:gaps[-1].start()] if gaps else words[0] if len(words) > 1 else after).rstrip() + " …"
    return _flat(before).lstrip(), _flat(text[start:end]), _flat(after).rstrip()


def highlighted(text: str, evidence: Evidence, chars: int) -> str:
    """The sentence in <mark> within its surroundings, all of it escaped."""
    before, sentence, after = around(text, evidence, chars)
    return (f'<span style="{_CONTEXT}">{html.escape(before)}</span>'
            f'<mark style="{_MARK}">{html.escape(sentence)}</mark>'
            f'<span style="{_CONTEXT}">{html.escape(after)}</span>')


def card_evidence(source: Source, evidence: Sequence[Evidence], scorer: str, best: Evidence | None) -> str | None:
    """Under a source card: its best sentence highlighted in about two lines of the chunk either side, its score,
    and whether it is the best sentence of all the sources. None when the chunk's sentences were not scored."""
    if not evidence:
        return None
    top = evidence[0]
    is_best = best is not None and top == best
    label = ("★ Best evidence of all sources" if is_best else "Evidence in this chunk") + \
        f" · sentence score {top.score:.4f} ({scorer})"
    border = "#e0a800" if is_best else "#f2d675"
    return (f'<div style="border-left:3px solid {border};padding:.1rem 0 .1rem .75rem;line-height:1.55">'
            f'<div style="{_LABEL}">{html.escape(label)}</div>'
            f'<div>{highlighted(source.text, top, 220)}</div></div>')


def compact_evidence(sources: Sequence[Source], evidence: Mapping[int, Sequence[Evidence]], prefix: str,
                     scorer: str) -> str:
    """One line per sent chunk, each the anchor its citations link to: '[n] file — …<mark>sentence</mark>… score'.

    A chunk whose sentences were not scored (the question was not covered) shows the start of its text instead.
    """
    best = best_evidence(evidence)
    heading = (f"The chunks kept, each with its best sentence and its score ({scorer}; ★ the best of all):"
               if best else "The closest chunks (not sent to the LLM):")
    lines = [f'<div style="{_LABEL}">{html.escape(heading)}</div>']
    for source in sources:
        spans = evidence.get(source.number or 0, [])
        title = f'<b>{html.escape(f"[{source.number}] {source.location}")}</b>'
        if spans:
            star = "★ " if spans[0] == best else ""
            body = (f"{highlighted(source.text, spans[0], 70)} "
                    f'<span style="{_CONTEXT};font-size:.8rem">{star}{spans[0].score:.4f}</span>')
        else:
            flat = _flat(source.text).strip()
            body = f'<span style="{_CONTEXT}">{html.escape(flat[:140] + ("…" if len(flat) > 140 else ""))}</span>'
        lines.append(f'<div id="{anchor(prefix, source.number or 0)}" style="margin:.25rem 0;line-height:1.5">'
                     f"{title} — {body}</div>")
    return "".join(lines)
