"""Evidence inside the sent chunks, and citations attributed to the answer's sentences.

    question + sent chunks --sentences, scored (question, sentence) in one batch--> evidence spans per chunk
    answer text --sentences--> each sentence's best-supporting sent chunk, or "unsupported"

Both use a pair scorer with the cross-encoder's interface (`BaseCrossEncoder.score`). Evidence: the cross-encoder
when the question was reranked, else the bi-encoder's cosine (`BiEncoderPairScorer`), so that a ranking without
the cross-encoder never uses it. Attribution: the bi-encoder's cosine, which measured better at telling whether a
chunk supports a sentence (see `AttributionRule`).
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Literal

from langchain_core.callbacks import Callbacks
from langchain_core.cross_encoders import BaseCrossEncoder
from langchain_core.documents import BaseDocumentCompressor, Document
from pydantic import ConfigDict

from ..results import AnswerSentence, Evidence, Source
from .prompt import content_words

# A sentence ends at . ! ? (possibly followed by a closing quote or bracket) before white space and a capital,
# digit or opening quote; or at a line break that ends a paragraph or a heading.
_SENTENCE_END = re.compile(r"(?<=[.!?])[\"')\]]*\s+(?=[\"'(\[A-Z0-9])|\n\s*\n|(?<=[^\s.!?:;,])\n(?=[A-Z#*\-])")
_ABBREVIATIONS = re.compile(r"(?:\b(?:e\.g|i\.e|etc|vs|cf|al|approx|no|fig|eq|st|dr|mr|mrs|ms|prof|inc|ltd|jr|sr|"
                            r"u\.s|u\.k|a\.d|b\.c)|\b[A-Z])\.$", re.IGNORECASE)
_CITATION = re.compile(r"\s*\[(\s*\d{1,3}(?:\s*,\s*\d{1,3})*\s*)\]")
_LEADING_CITATIONS = re.compile(r"(?:\s*\[\s*\d{1,3}(?:\s*,\s*\d{1,3})*\s*\])+")
MIN_SENTENCE_CHARS = 12
_TERMINAL = set(".!?:;\"')]")
_NUMBER = re.compile(r"\d+(?:[.,]\d+)*")


def split_sentences(text: str) -> list[tuple[int, int]]:
    """(start, end) of each sentence of `text`, in order, without surrounding white space.

    A pragmatic splitter for prose: it keeps abbreviations and initials (e.g., U.S., J. Smith) inside their
    sentence. Spans index the original text, so that a highlight can be drawn on the chunk as stored.
    """
    spans: list[tuple[int, int]] = []
    start = 0
    for match in _SENTENCE_END.finditer(text):
        if _ABBREVIATIONS.search(text[start:match.start()].rstrip("\"')]")) and "\n" not in match.group(0):
            continue
        spans.append((start, match.start()))
        start = match.end()
    spans.append((start, len(text)))
    trimmed = []
    for a, b in spans:
        piece = text[a:b]
        lead = len(piece) - len(piece.lstrip())
        a, b = a + lead, a + len(piece.rstrip())
        if b > a:
            trimmed.append((a, b))
    return trimmed


def evidence_units(text: str) -> list[tuple[int, int]]:
    """The sentences of a chunk as evidence is scored: fragments shorter than MIN_SENTENCE_CHARS (a heading's
    number, a stray word) and lines that end without punctuation (a heading, a glossary term) join the sentence
    after them, so that a heading never wins as evidence on its own."""
    spans = split_sentences(text)
    merged: list[tuple[int, int]] = []
    carry: int | None = None
    for i, (a, b) in enumerate(spans):
        a = carry if carry is not None else a
        heading = text[b - 1] not in _TERMINAL and "\n" in text[b:spans[i + 1][0]] if i + 1 < len(spans) else False
        if b - a < MIN_SENTENCE_CHARS or heading:
            carry = a
            continue
        carry = None
        merged.append((a, b))
    if carry is not None:
        if merged:
            merged[-1] = (merged[-1][0], spans[-1][1])
        else:
            merged.append((carry, spans[-1][1]))
    return merged


def find_evidence(question: str, sources: Sequence[Source], scorer: BaseCrossEncoder) -> dict[int, list[Evidence]]:
    """Every sentence of each sent chunk scored against the question, in one batch; best first per chunk.

    Returns {citation number: [Evidence, ...]} for the numbered sources.
    """
    items: list[tuple[int, int, int, str]] = []
    for source in sources:
        if source.number is None:
            continue
        for a, b in evidence_units(source.text):
            items.append((source.number, a, b, source.text[a:b]))
    if not items:
        return {}
    scores = scorer.score([(question, " ".join(text.split())) for _, _, _, text in items])
    found: dict[int, list[Evidence]] = {}
    for (number, a, b, text), score in zip(items, scores):
        found.setdefault(number, []).append(Evidence(number=number, start=a, end=b, score=round(float(score), 6),
                                                     text=text))
    for spans in found.values():
        spans.sort(key=lambda e: -e.score)
    return found


def best_evidence(evidence: dict[int, list[Evidence]]) -> Evidence | None:
    """The highest-scoring sentence over all sent chunks."""
    every = [e for spans in evidence.values() for e in spans]
    return max(every, key=lambda e: e.score) if every else None


def evidence_window(text: str, evidence: Sequence[Evidence], max_chars: int) -> str:
    """The chunk cut to its best sentence with its neighbours, grown sentence by sentence while under
    `max_chars` (the best sentence always stays whole). Cuts are marked with '…'."""
    if not evidence:
        return text
    best = evidence[0]
    spans = evidence_units(text)
    index = next((i for i, (a, b) in enumerate(spans) if a <= best.start < b or (a, b) == (best.start, best.end)), 0)
    low = high = index
    while True:
        grown = False
        for candidate in (high + 1, low - 1):
            if 0 <= candidate < len(spans):
                a, b = spans[min(low, candidate)][0], spans[max(high, candidate)][1]
                if b - a <= max_chars:
                    low, high, grown = min(low, candidate), max(high, candidate), True
        if not grown:
            break
    a, b = spans[low][0], spans[high][1]
    return ("… " if a > 0 else "") + text[a:b] + (" …" if b < len(text.rstrip()) else "")


Context = Literal["chunks", "windows", "evidence"]


def compress(text: str, evidence: Sequence[Evidence], context: Context, max_chars: int,
             chosen: set[tuple[int, int]] | None = None) -> str:
    """One chunk's text as the LLM reads it: whole (`chunks`), cut to the window around its best sentence
    (`windows`), or only its sentences in `chosen` (`evidence`: the best sentences over all chunks), in text order."""
    if context == "chunks":
        return text
    if context == "windows":
        return evidence_window(text, evidence, max_chars)
    picked = sorted((e for e in evidence if (e.start, e.end) in (chosen or set())), key=lambda e: e.start)
    return " … ".join(" ".join(e.text.split()) for e in picked)


def choose_sentences(evidence: dict[int, list[Evidence]], count: int) -> dict[int, set[tuple[int, int]]]:
    """The `count` best-scoring sentences over all chunks, as {chunk number: {(start, end), ...}}."""
    every = sorted((e for spans in evidence.values() for e in spans), key=lambda e: -e.score)[:count]
    chosen: dict[int, set[tuple[int, int]]] = {}
    for e in every:
        chosen.setdefault(e.number, set()).add((e.start, e.end))
    return chosen


class EvidenceCompressor(BaseDocumentCompressor):
    """A LangChain document compressor: the documents stay, in order; their text is cut to their evidence.

    Each document needs `metadata["number"]` (its citation number). The sentences of all documents are scored
    against the query in one batch; each returned document carries them in `metadata["evidence"]` (Evidence
    objects, best first) and its text as the LLM should read it (`context`, see `compress`). In `evidence`
    mode a document none of whose sentences is among the best `sentences` comes back with empty text.
    """

    model_config = ConfigDict(arbitrary_types_allowed=True)

    scorer: BaseCrossEncoder
    context: Context = "evidence"
    max_chars: int = 400
    sentences: int = 1

    def compress_documents(self, documents: Sequence[Document], query: str,
                           callbacks: Callbacks | None = None) -> Sequence[Document]:
        sources = [Source(chunk_id=str(d.id), file="", page=None, start_index=0, text=d.page_content, bi_rank=0,
                          bi_score=0.0, number=int(d.metadata["number"])) for d in documents]
        evidence = find_evidence(query, sources, self.scorer)
        chosen = choose_sentences(evidence, self.sentences)
        compressed = []
        for d in documents:
            number = int(d.metadata["number"])
            spans = evidence.get(number, [])
            text = compress(d.page_content, spans, self.context, self.max_chars, chosen.get(number))
            compressed.append(Document(page_content=text, id=d.id, metadata={**d.metadata, "evidence": spans}))
        return compressed


# -- attribution of the answer's sentences

@dataclass(frozen=True)
class AttributionRule:
    """How an answer sentence is matched to a chunk, chosen with `bench/attribution.py` on squad2-dev answers.

    `question`: when the scorer reads the question before the sentence: "never", "short" (sentences of fewer than
    `short_words` content words, since "In 1066." says little on its own), or "always". `copied`: a chunk holding
    every content word of the sentence supports it whatever the score (small models copy phrases). `threshold`:
    the score below which a sentence is unsupported. The defaults are the measured best with the bi-encoder's
    cosine as the scorer (README, 'Answers': the cross-encoder, a relevance model, called a sentence supported by
    another question's chunks 20% of the time; the bi-encoder with the question 3%, with every correct answer
    attributed to a chunk holding its gold answer).
    """

    question: str = "always"
    short_words: int = 4
    copied: bool = True
    threshold: float = 0.5

    def query(self, question: str, sentence: str) -> str:
        short = len(content_words(sentence)) < self.short_words
        use = self.question == "always" or (self.question == "short" and short)
        return f"{question} {sentence}" if use else sentence


def answer_sentences(answer: str) -> list[tuple[int, int, list[int]]]:
    """(start, end, numbers the model cited in it) per sentence of an answer. A citation standing between two
    sentences ("... first. [1] Their ...") belongs to the one before it."""
    spans = [list(span) for span in split_sentences(answer)]
    for i in range(1, len(spans)):
        lead = _LEADING_CITATIONS.match(answer, spans[i][0], spans[i][1])
        if lead and lead.end() > spans[i][0]:
            spans[i - 1][1] = lead.end()
            rest = answer[lead.end():spans[i][1]]
            spans[i][0] = lead.end() + len(rest) - len(rest.lstrip())
    result = []
    for a, b in spans:
        if b <= a:
            continue
        cited = [int(n) for m in _CITATION.finditer(answer[a:b]) for n in m.group(1).split(",")]
        result.append((a, b, list(dict.fromkeys(cited))))
    return result


def attribute(question: str, answer: str, sources: Sequence[Source], scorer: BaseCrossEncoder,
              rule: AttributionRule = AttributionRule()) -> list[AnswerSentence]:
    """Each sentence of `answer` with the sent chunk that supports it best, in one batch of pairs.

    A sentence is supported when its best chunk scores at least `rule.threshold`, or when the chunk contains all
    of its content words (a small model often copies a phrase, which a scorer may under-rate). The model's own
    citations are kept as they were written (`cited`); `attributed` is what this check found.
    """
    numbered = [s for s in sources if s.number is not None]
    pieces = answer_sentences(answer)
    if not pieces:
        return []
    plains = [_CITATION.sub("", answer[a:b]).strip() for a, b, _ in pieces]
    pairs = [(rule.query(question, plain), s.text) for plain in plains for s in numbered]
    scores = scorer.score(pairs) if pairs else []
    result = []
    for i, ((a, b, cited), plain) in enumerate(zip(pieces, plains)):
        row = scores[i * len(numbered):(i + 1) * len(numbered)]
        words = content_words(plain)
        # A chunk can support a sentence only if it states the sentence's numbers: the scorer measures relevance,
        # and "Refunds take 30 days" is as relevant to a chunk that says 14 days as the right answer is.
        numbers = set(_NUMBER.findall(plain))
        able = [j for j, s in enumerate(numbered) if numbers <= set(_NUMBER.findall(s.text))]
        copied = [numbered[j].number for j in able
                  if rule.copied and words and words <= content_words(numbered[j].text)]
        best = max(able, key=lambda j: row[j]) if able else None
        attributed: list[int] = []
        score = None
        if best is not None:
            score = round(float(row[best]), 6)
            if copied:
                attributed = [copied[0]] if numbered[best].number not in copied else [numbered[best].number]
            elif row[best] >= rule.threshold:
                attributed = [numbered[best].number]
        result.append(AnswerSentence(start=a, end=b, text=answer[a:b], cited=cited, attributed=attributed,
                                     score=score, supported=bool(attributed)))
    return result
