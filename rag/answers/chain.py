"""The steps of the LCEL chain from question to answer, each a runnable that the pipeline also runs on its own.

    str | {question, history}
      --as_input------------------>  {question, history}
      --assign(standalone_question)  the follow-up rewritten with its history (the question itself otherwise)
      --assign(documents)--------->  the retriever on the standalone question: the candidate pool, best first
      --assign(ranking)----------->  the pool as a `Ranking`: both orders, the best `keep` numbered [1]..[k]
      --assign(prepared)---------->  the not-covered gate; the evidence sentences of the kept chunks; what is sent
      --generate------------------>  prompt | ChatOllama | text (or the not-covered message, without the LLM)

`Pipeline.chain()` composes them into one runnable (`invoke`, `stream`, `batch` and their async forms).
`Pipeline.ask` runs the same runnables in two calls, everything up to `prepared` and then `generate` as a stream,
so that the sources are known before the first token.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field, replace

from langchain_core.documents import Document
from langchain_core.language_models import BaseChatModel
from langchain_core.output_parsers import StrOutputParser
from langchain_core.prompts import ChatPromptTemplate, MessagesPlaceholder
from langchain_core.runnables import Runnable, RunnableBranch, RunnableLambda

from ..results import Evidence, Ranking, Source
from ..retrieval.rerank import BI_RANK, BI_SCORE, CE_RANK, CE_SCORE
from ..settings import Settings
from .declines import not_covered
from .evidence import EvidenceCompressor
from .prompt import build_messages


def as_input(value: str | dict) -> dict:
    """A bare question, or a mapping with `question` and optionally `history` ((role, text) pairs)."""
    if isinstance(value, str):
        return {"question": value, "history": []}
    return {"history": [], **value}


@dataclass(frozen=True)
class RankingShape:
    """What turns a pool of documents into a `Ranking`: how many are kept, and how the pool was made."""

    keep: int
    reranked: bool
    reranker: str | None
    embedder: str
    hybrid: bool
    notice: str | None = None

    def to_ranking(self, question: str, documents: list[Document]) -> Ranking:
        """`documents` in final order (cross-encoder order when reranked), each with its bi-encoder rank."""
        numbers = {d.id: n for n, d in enumerate(documents[: self.keep], start=1)}
        by_id = {d.id: to_source(d, numbers.get(d.id)) for d in documents}
        pool = sorted(by_id.values(), key=lambda s: s.bi_rank)
        kept = [by_id[d.id] for d in documents[: self.keep]]
        return Ranking(question=question, candidates=pool, kept=kept, reranked=self.reranked and bool(documents),
                       reranker=self.reranker if self.reranked else None, embedder=self.embedder,
                       hybrid=self.hybrid, rerank_notice=self.notice)


def to_source(doc: Document, number: int | None) -> Source:
    m = doc.metadata
    return Source(
        chunk_id=str(doc.id), file=str(m.get("source", "?")), page=m.get("page"),
        start_index=int(m.get("start_index", 0)), text=doc.page_content, bi_rank=int(m[BI_RANK]),
        bi_score=round(float(m[BI_SCORE]), 6), ce_rank=m.get(CE_RANK),
        ce_score=None if m.get(CE_SCORE) is None else round(float(m[CE_SCORE]), 6), number=number,
    )


@dataclass
class Prepared:
    """What the LLM is given for one ranking: nothing and the not-covered message, or the sent chunks."""

    not_covered: str | None
    evidence: dict[int, list[Evidence]] = field(default_factory=dict)
    sent: list[Source] = field(default_factory=list)


def prepare(ranking: Ranking, settings: Settings, compressor: Callable[[bool], EvidenceCompressor]) -> Prepared:
    """Gate the ranking (`declines.not_covered`); otherwise score the kept chunks' sentences against the question
    and cut each chunk to what `settings.context` sends (`compressor(reranked)` builds the evidence compressor)."""
    message = not_covered(ranking, settings)
    if message:
        return Prepared(not_covered=message)
    documents = [Document(page_content=s.text, id=s.chunk_id, metadata={"number": s.number}) for s in ranking.kept]
    compressed = compressor(ranking.reranked).compress_documents(documents, ranking.question)
    sent = [replace(s, text=d.page_content) for s, d in zip(ranking.kept, compressed)]
    return Prepared(not_covered=None, evidence={d.metadata["number"]: d.metadata["evidence"] for d in compressed},
                    sent=[s for s in sent if s.text.strip()])


def generation(chat_model: BaseChatModel, layout: str) -> Runnable:
    """{standalone_question, prepared} -> answer text, streamed: the LLM on the sent chunks, or the gate's message."""
    prompt = ChatPromptTemplate.from_messages([MessagesPlaceholder("messages")])
    to_messages = RunnableLambda(lambda s: {"messages": build_messages(s["standalone_question"], s["prepared"].sent,
                                                                       layout)}, name="messages")
    fixed = RunnableLambda(lambda s: s["prepared"].not_covered, name="not_covered")
    answer = to_messages | prompt | chat_model | StrOutputParser()
    return RunnableBranch((lambda s: s["prepared"].not_covered is not None, fixed), answer).with_config(
        run_name="generate")


def state_of(ranking: Ranking, question: str | None = None) -> dict:
    """The chain's state for a ranking made elsewhere (Compare answers each side's ranking with `generate`)."""
    return {"question": question or ranking.question, "history": [], "standalone_question": ranking.question,
            "ranking": ranking}
