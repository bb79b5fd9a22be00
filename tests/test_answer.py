"""Answers: a real small LLM over Ollama's HTTP API, the not-covered path, follow-ups, citations, LLM failures."""

import pytest

from rag.answers.prompt import CitationFilter, standalone_question
from rag.errors import ModelNotPulled, OllamaUnreachable
from rag.pipeline import Pipeline
from tests.conftest import make_settings, threshold_between
from tests.fakes import ScriptedChat
from tests.samples import POLICY


@pytest.fixture
def stocked(pipeline):
    pipeline.library.ingest_bytes("policy.md", POLICY.encode())
    return pipeline


def test_the_real_llm_answers_from_the_retrieved_chunks_with_sources(stocked):
    answer = stocked.ask("How long does a refund take?")
    pieces = list(answer.tokens)
    assert len(pieces) > 1, "the answer should arrive as a stream of pieces"
    assert answer.outcome == "answered" and "14" in answer.text
    assert answer.sources[0].number == 1 and "14 days" in answer.sources[0].text
    assert set(answer.citations) <= {s.number for s in answer.sources}
    t = answer.timings
    assert t.retrieve_ms is not None and t.rerank_ms is not None and t.first_token_ms is not None and t.answer_ms


def test_a_question_the_documents_do_not_cover_gets_no_llm_call(tmp_path, store, cross_encoder):
    probe = Pipeline(make_settings(tmp_path), store, cross_encoder)
    probe.library.ingest_bytes("policy.md", POLICY.encode())
    threshold = threshold_between(probe, ["What is the capital of Mongolia?"], ["How long does a refund take?"])
    settings = make_settings(tmp_path, min_rerank_score=threshold)
    chat = ScriptedChat()  # no replies: any call to the LLM would fail the test
    pipeline = Pipeline(settings, store, cross_encoder, chat_model=chat)
    answer = pipeline.ask("What is the capital of Mongolia?")
    assert answer.outcome == "not_covered"
    assert "do not seem to cover" in answer.consume()
    assert answer.ranking.best_rerank_score < threshold and chat.sent == []
    # A covered question with the same threshold reaches the LLM.
    covered = Pipeline(settings, store, cross_encoder, chat_model=ScriptedChat("It takes 14 days [1]."))
    assert covered.ask("How long does a refund take?").outcome == "answered"


def test_a_follow_up_is_rewritten_before_retrieval_and_the_rewrite_is_returned(stocked):
    history = [("user", "How long does a refund take?"), ("assistant", "A refund takes 14 days to process.")]
    answer = stocked.ask("And where do orders ship from?", history=history)
    answer.consume()
    assert answer.rewritten and "ship" in answer.standalone_question.lower()
    assert answer.ranking.question == answer.standalone_question
    assert any("Oslo" in s.text for s in answer.sources)


def test_the_rewrite_prompt_carries_the_conversation_and_a_good_rewrite_is_used(store, settings, cross_encoder):
    chat = ScriptedChat("Where do orders of kettles ship from?", "From Oslo [1].")
    pipeline = Pipeline(settings, store, cross_encoder, chat_model=chat)
    pipeline.library.ingest_bytes("policy.md", POLICY.encode())
    answer = pipeline.ask("Where do they ship from?", history=[("user", "Do you sell kettles?"), ("assistant", "Yes.")])
    assert answer.standalone_question == "Where do orders of kettles ship from?"
    rewrite_request = "\n".join(m.content for m in chat.sent[0])
    assert "Do you sell kettles?" in rewrite_request and "Where do they ship from?" in rewrite_request
    assert answer.consume() == "From Oslo [1]."


@pytest.mark.parametrize("reply, expected", [
    ("What is the warranty on kettles?", "What is the warranty on kettles?"),
    ("Standalone question: \"What is the warranty on kettles?\"", "What is the warranty on kettles?"),
    ("A refund takes 14 days.", "Do you sell kettles? What is the warranty?"),  # an answer, not a question
    ("What is a refund?", "Do you sell kettles? What is the warranty?"),  # lost the follow-up's subject
    ("", "Do you sell kettles? What is the warranty?"),
])
def test_an_implausible_rewrite_falls_back_to_the_conversation(reply, expected):
    assert standalone_question(reply, "What is the warranty?", [("user", "Do you sell kettles?")]) == expected


@pytest.mark.parametrize("follow_up, joined", [
    ("What is the capital of Australia?", False),  # a change of subject stands on its own
    ("How long does shipping to Norway take?", False),
    ("How much does it cost?", True),  # refers back
    ("And where do orders ship from?", True),  # continues the conversation
    ("What about descaling kettles?", True),
    ("And the other colours?", True),
    ("Why?", True),  # names too little
])
def test_the_fallback_joins_the_previous_question_only_to_a_follow_up_that_leans_on_it(follow_up, joined):
    history = [("user", "Do you sell kettles?"), ("assistant", "Yes.")]
    searched = standalone_question("A refund takes 14 days.", follow_up, history)
    assert searched == (f"Do you sell kettles? {follow_up}" if joined else follow_up)


def test_citations_of_chunks_that_were_not_sent_are_removed(store, settings, cross_encoder):
    chat = ScriptedChat("Refunds take 14 days [1], see also [7] and [2, 9].")
    pipeline = Pipeline(settings, store, cross_encoder, chat_model=chat)
    pipeline.library.ingest_bytes("policy.md", POLICY.encode())
    answer = pipeline.ask("How long does a refund take?", keep=3)
    text = answer.consume()
    assert text == "Refunds take 14 days [1], see also  and [2]."
    assert answer.citations == [1, 2] and answer.dropped_citations == [7, 9]


def test_the_citation_filter_works_across_token_boundaries():
    cf = CitationFilter([1, 2, 3])
    assert "".join(cf.filter(["See [", "1", "] and [", "4", "]", " or [2", "]."])) == "See [1] and  or [2]."
    assert cf.cited == [1, 2] and cf.dropped == [4]
    assert "".join(CitationFilter([1]).filter(["array[0"])) == "array[0"


def test_ollama_unreachable_is_reported_while_streaming_and_the_sources_stay(tmp_path, store, cross_encoder):
    settings = make_settings(tmp_path, ollama_url="http://127.0.0.1:9")
    pipeline = Pipeline(settings, store, cross_encoder)
    pipeline.library.ingest_bytes("policy.md", POLICY.encode())
    answer = pipeline.ask("How long does a refund take?")
    assert "14 days" in answer.sources[0].text
    with pytest.raises(OllamaUnreachable, match="not reachable at http://127.0.0.1:9") as failed:
        answer.consume()
    assert "ollama serve" in failed.value.fix


def test_a_model_that_is_not_pulled_says_how_to_pull_it(tmp_path, store, cross_encoder, ollama_url):
    settings = make_settings(tmp_path, ollama_url=ollama_url, ollama_model="llama3.2")
    pipeline = Pipeline(settings, store, cross_encoder)
    pipeline.library.ingest_bytes("policy.md", POLICY.encode())
    with pytest.raises(ModelNotPulled, match="'llama3.2' is not pulled") as failed:
        pipeline.ask("How long does a refund take?").consume()
    assert "ollama pull llama3.2" in failed.value.fix
