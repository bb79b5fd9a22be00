"""The pipeline as LangChain runnables: a retriever and a chain that a LangChain user composes into code of their own,
run with the real bi-encoder, Chroma, cross-encoder and the stand-in LLM over Ollama's HTTP API."""

import asyncio

import pytest
from langchain_core.callbacks import BaseCallbackHandler
from langchain_core.documents import Document
from langchain_core.output_parsers import StrOutputParser
from langchain_core.prompts import ChatPromptTemplate
from langchain_core.retrievers import BaseRetriever
from langchain_core.runnables import RunnablePassthrough

from rag.answers.llm import make_chat_model
from rag.documents.library import Library
from rag.errors import ModelLoadError
from rag.pipeline import Pipeline
from rag.retrieval.store import Store
from tests.conftest import DATA, REPO, cli_env, make_settings
from tests.samples import POLICY

QUESTION = "How long does a refund take?"


@pytest.fixture
def settings(tmp_path, ollama_url):
    # Chunks of about one section each: the policy makes six, so that a top 3 is a choice.
    return make_settings(tmp_path, ollama_url, chunk_size=150, chunk_overlap=0)


@pytest.fixture
def stocked(pipeline):
    pipeline.library.ingest_bytes("policy.md", POLICY.encode())
    assert pipeline.store.count_chunks() >= 5
    return pipeline


class Recorder(BaseCallbackHandler):
    """Names of the retrievers and chat models a run went through."""

    def __init__(self) -> None:
        self.retrievers: list[str] = []
        self.chat_models = 0

    def on_retriever_start(self, serialized, query, *, name=None, **kwargs):
        self.retrievers.append(name)

    def on_chat_model_start(self, serialized, messages, **kwargs):
        self.chat_models += 1


def test_the_public_names_import_from_the_package():
    from rag import Pipeline as Exported, RerankingRetriever, ScoreKeepingReranker, StoreRetriever, build_pipeline

    assert Exported is Pipeline and callable(build_pipeline)
    assert issubclass(StoreRetriever, BaseRetriever) and issubclass(RerankingRetriever, BaseRetriever)
    assert ScoreKeepingReranker.__name__ == "ScoreKeepingReranker"


def test_the_retriever_is_a_langchain_retriever_returning_the_reranked_top_3_with_both_scores(stocked):
    retriever = stocked.retriever()
    assert isinstance(retriever, BaseRetriever)
    docs = retriever.invoke(QUESTION)
    assert len(docs) == 3 and "14 days" in docs[0].page_content
    assert [d.metadata["ce_rank"] for d in docs] == [1, 2, 3]
    scores = [d.metadata["ce_score"] for d in docs]
    assert scores == sorted(scores, reverse=True)
    assert all(isinstance(d.metadata["bi_rank"], int) and -1 <= d.metadata["bi_score"] <= 1 for d in docs)
    # The same top 3 and scores as the pipeline's own ranking: one path, not two.
    ranking = stocked.retrieve(QUESTION)
    assert [s.chunk_id for s in ranking.kept] == [d.id for d in docs]
    assert [s.ce_score for s in ranking.kept] == [round(x, 6) for x in scores]


def test_without_reranking_the_retriever_keeps_the_bi_encoder_order(stocked):
    docs = stocked.retriever(rerank=False, keep=4).invoke(QUESTION)
    assert [d.metadata["bi_rank"] for d in docs] == [1, 2, 3, 4]
    assert all("ce_score" not in d.metadata for d in docs)


def test_a_user_composes_the_retriever_into_an_lcel_chain_of_their_own(stocked, settings):
    prompt = ChatPromptTemplate.from_messages([
        ("system", "Answer from the context only.\n\nContext:\n{context}"), ("human", "{question}")])
    chain = ({"context": stocked.retriever() | (lambda docs: "\n\n".join(d.page_content for d in docs)),
              "question": RunnablePassthrough()}
             | prompt | make_chat_model(settings) | StrOutputParser())
    assert "14" in chain.invoke(QUESTION)


def test_the_chain_invokes_streams_and_batches_with_callbacks_passing_through(stocked):
    chain = stocked.chain()
    recorder = Recorder()
    text = chain.invoke(QUESTION, config={"callbacks": [recorder]})
    assert "14" in text
    assert recorder.retrievers == ["RerankingRetriever", "StoreRetriever"] and recorder.chat_models == 1
    pieces = list(chain.stream(QUESTION))
    assert len(pieces) > 1 and "14" in "".join(pieces)
    first, second = chain.batch([QUESTION, "How many years of warranty does a kettle have?"])
    assert "14" in first and "three" in second.lower()


def test_the_chain_runs_asynchronously(stocked):
    chain = stocked.chain()

    async def run():
        text = await chain.ainvoke(QUESTION)
        pieces = [p async for p in chain.astream(QUESTION)]
        batch = await chain.abatch([QUESTION, QUESTION])
        return text, pieces, batch

    text, pieces, batch = asyncio.run(run())
    assert "14" in text and "14" in "".join(pieces) and all("14" in b for b in batch)


def test_the_chain_with_sources_streams_the_ranking_before_the_answer(stocked):
    chunks = list(stocked.chain(with_sources=True).stream(QUESTION))
    keys = [next(iter(c)) for c in chunks]
    assert "ranking" in keys and "answer" in keys
    assert keys.index("ranking") < keys.index("answer")
    ranking = next(c["ranking"] for c in chunks if "ranking" in c)
    assert ranking.reranked and [s.number for s in ranking.kept] == [1, 2, 3]
    assert "14" in "".join(c["answer"] for c in chunks if "answer" in c)


def test_the_chain_gives_the_not_covered_message_without_the_llm(stocked):
    stocked.settings.min_rerank_score = 0.999
    assert "do not seem to cover" in stocked.chain().invoke("What is the capital of Mongolia?")


def test_ask_times_each_stage_from_the_chains_callbacks(stocked):
    answer = stocked.ask(QUESTION)
    answer.consume()
    t = answer.timings
    assert t.retrieve_ms > 0 and t.rerank_ms > 0 and t.evidence_ms is not None and t.first_token_ms > 0
    assert t.rewrite_ms is None


class Unloadable:
    """A cross-encoder loader that fails as a machine without the model hub does, counting its calls."""

    def __init__(self) -> None:
        self.calls = 0

    def __call__(self):
        self.calls += 1
        raise ModelLoadError("cannot load cross-encoder cross-encoder/ms-marco-MiniLM-L6-v2: not in the local cache "
                             "and the model hub is unreachable", fix="download it once with internet")


def test_a_cross_encoder_that_cannot_load_gives_answers_without_reranking_and_a_notice(settings, store):
    loader = Unloadable()
    pipeline = Pipeline(settings, store, loader)
    pipeline.library.ingest_bytes("policy.md", POLICY.encode())
    answer = pipeline.ask(QUESTION, fallback=True)
    assert "14" in answer.consume()
    ranking = answer.ranking
    assert not ranking.reranked and ranking.reranker is None
    assert ranking.rerank_notice.startswith("reranking unavailable: cannot load cross-encoder")
    assert "download it once" in ranking.rerank_notice
    assert [s.bi_rank for s in ranking.kept] == [1, 2, 3]
    # Asked without the fallback (as an evaluation asks), the same failure is an error.
    with pytest.raises(ModelLoadError):
        pipeline.retrieve(QUESTION, rerank=True)
    assert pipeline.retrieve(QUESTION, fallback=True).rerank_notice
    assert loader.calls == 1, "a load that failed is not retried on every question"


def test_asking_without_reranking_never_tries_to_load_the_cross_encoder(settings, store):
    loader = Unloadable()
    pipeline = Pipeline(settings, store, loader)
    pipeline.library.ingest_bytes("policy.md", POLICY.encode())
    ranking = pipeline.retrieve(QUESTION, rerank=False)
    assert ranking.rerank_notice is None and loader.calls == 0


def test_the_store_retriever_is_usable_alone(stocked):
    from rag import StoreRetriever

    docs = StoreRetriever(store=stocked.store, k=5).invoke(QUESTION)
    assert len(docs) == 5 and all(isinstance(d, Document) for d in docs)
    assert [d.metadata["bi_rank"] for d in docs] == [1, 2, 3, 4, 5]


def readme_example() -> str:
    """The python block of the README's section on using the retriever and the chain."""
    text = (REPO / "README.md").read_text()
    section = text[text.index("## Use the retriever and the chain in your own LangChain code"):]
    return section[section.index("```python\n") + 10: section.index("```\n", section.index("```python\n") + 10)]


def test_the_readme_example_runs_as_written(tmp_path, ollama_url, bi_encoder, monkeypatch):
    settings = make_settings(tmp_path, ollama_url)
    store = Store(settings, bi_encoder)
    try:
        outcomes = Library(store, settings).ingest_many((p.name, p.read_bytes()) for p in sorted(DATA.iterdir()))
        assert all(o.status == "added" for o in outcomes)
    finally:
        store.close()
    for name, value in cli_env(settings).items():
        if name.startswith("RAG_"):
            monkeypatch.setenv(name, value)
    printed: list[str] = []  # one entry per print call: an answer may hold blank lines of its own
    exec(compile(readme_example(), "README.md", "exec"), {"print": lambda *args: printed.append(" ".join(args))})
    ranked, answers = printed[:3], printed[3:]
    assert [line.split("cross-encoder #")[1].split()[0] for line in ranked] == ["1", "2", "3"]
    assert len(answers) == 2 and all(a.strip() for a in answers), "both chains answered"
