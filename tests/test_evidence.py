"""Evidence sentences, attributed citations, declines and answer scoring, on hand-made texts.

The scorer here is the fixed-score fake where a test needs to decide which chunk wins; the real cross-encoder and
bi-encoder are used where the test is about what they find.
"""

import pytest

from rag.answers.declines import is_decline
from rag.answers.evidence import (answer_sentences, attribute, best_evidence, evidence_window, find_evidence,
                                  split_sentences)
from rag.evaluation.answer_eval import calibrate_gate, contains_answer, normalize_answer, token_f1
from rag.results import Source
from rag.retrieval.embeddings import BiEncoderPairScorer
from tests.fakes import FixedScoreCrossEncoder, PairScoreCrossEncoder

CHUNK = ("The Normans were descended from Norse raiders. In 911 the Frankish king granted them land, e.g. the "
         "lower Seine valley. Rollo became the first ruler of Normandy.\n\nTheir language was Norman French.")


def source(number, text, file="doc.txt"):
    return Source(chunk_id=f"c{number}", file=file, page=None, start_index=0, text=text, bi_rank=number,
                  bi_score=0.5, number=number)


def sentences(text):
    return [text[a:b] for a, b in split_sentences(text)]


def test_sentences_split_at_full_stops_and_paragraphs_but_not_inside_abbreviations():
    assert sentences(CHUNK) == [
        "The Normans were descended from Norse raiders.",
        "In 911 the Frankish king granted them land, e.g. the lower Seine valley.",
        "Rollo became the first ruler of Normandy.",
        "Their language was Norman French.",
    ]
    assert sentences("Dr. J. Smith lives here. He works.") == ["Dr. J. Smith lives here.", "He works."]
    assert sentences("") == [] and sentences("  one line without a stop  ") == ["one line without a stop"]


def test_evidence_is_each_sent_chunk_scored_by_sentence_best_first():
    scorer = FixedScoreCrossEncoder({"Rollo": 0.9, "Frankish": 0.4}, otherwise=0.1)
    found = find_evidence("Who ruled Normandy first?", [source(1, CHUNK), source(2, "Nothing here at all, sadly.")],
                          scorer)
    assert [e.text for e in found[1]][:2] == ["Rollo became the first ruler of Normandy.",
                                              "In 911 the Frankish king granted them land, e.g. the lower Seine valley."]
    top = best_evidence(found)
    assert top.number == 1 and CHUNK[top.start:top.end] == top.text and top.score == 0.9
    assert len(scorer.calls) == 1, "all sentences of all sent chunks are scored in one batch"


def test_an_evidence_window_keeps_the_best_sentence_whole_and_marks_the_cuts():
    scorer = FixedScoreCrossEncoder({"Rollo": 0.9})
    evidence = find_evidence("q", [source(1, CHUNK)], scorer)[1]
    window = evidence_window(CHUNK, evidence, max_chars=130)
    assert "Rollo became the first ruler of Normandy." in window
    assert window.startswith("… ") and len(window) < len(CHUNK)
    assert evidence_window(CHUNK, evidence, max_chars=5000) == CHUNK


def test_a_citation_after_the_full_stop_belongs_to_the_sentence_before_it():
    text = "Rollo ruled first. [1] Their language was Norman French [2]."
    parts = [(text[a:b], cited) for a, b, cited in answer_sentences(text)]
    assert parts == [("Rollo ruled first. [1]", [1]), ("Their language was Norman French [2].", [2])]


def test_each_answer_sentence_is_attributed_to_the_chunk_that_supports_it_or_flagged():
    sources = [source(1, CHUNK), source(2, "Sky launched its digital service in 1998.", file="sky.txt")]
    scorer = PairScoreCrossEncoder({("ruler", "Rollo"): 0.8, ("ruler", "Sky"): 0.3}, otherwise=0.05)
    answer = "The first ruler was Rollo the Walker [2]. The moon is made of cheese."
    result = attribute("Who ruled Normandy first?", answer, sources, scorer)
    first, second = result
    assert first.cited == [2], "the model's own citation is kept as written"
    assert first.attributed == [1] and first.supported
    assert second.attributed == [] and not second.supported


def test_a_sentence_that_copies_a_chunk_is_attributed_to_it_whatever_the_scores():
    sources = [source(1, "Warsaw is the capital of Poland."), source(2, "Norman French was their language.")]
    scorer = FixedScoreCrossEncoder({"Warsaw": 0.9}, otherwise=0.0)
    (only,) = attribute("What language?", "Norman French.", sources, scorer)
    assert only.attributed == [2]


def test_the_real_cross_encoder_finds_the_sentence_that_answers(cross_encoder):
    found = find_evidence("Who was the first ruler of Normandy?", [source(1, CHUNK)], cross_encoder)
    assert "Rollo" in found[1][0].text


def test_the_bi_encoder_scores_pairs_by_cosine(bi_encoder):
    scorer = BiEncoderPairScorer(bi_encoder)
    same, other = scorer.score([("Norman rulers", "Norman rulers"), ("Norman rulers", "refund policy for kettles")])
    assert same == pytest.approx(1.0, abs=1e-3) and other < 0.5


@pytest.mark.parametrize("text, declined", [
    ("The documents do not contain the answer.", True),
    ("The passages don't mention when it happened.", True),
    ("I cannot answer this from the passages.", True),
    ("There is no information about the tower's height.", True),
    ("It is not mentioned in the passages.", True),
    ("Rollo was the first ruler of Normandy [1].", False),
    ("No. The Normans came from Scandinavia [1].", False),
    ("Warsaw, which is not the oldest city, became the capital in 1596 [2].", False),
])
def test_a_decline_is_recognised_in_the_answers_own_words(text, declined):
    assert is_decline(text) is declined


def test_answers_are_normalised_and_scored_as_squad_does():
    assert normalize_answer("The  Norman-French, language!") == "normanfrench language"
    assert contains_answer("It was the Normans [1].", ["Normans"])
    assert not contains_answer("Normandy", ["Norman"]), "whole words only"
    assert token_f1("Rollo the Walker", ["Rollo"]) == pytest.approx(2 * (1 / 2) * 1 / (1 / 2 + 1))
    assert token_f1("nothing", ["Rollo", "nothing"]) == 1.0


def test_the_gate_calibration_balances_answerable_questions_let_through_and_off_corpus_ones_stopped():
    answerable = [{"best_rerank_score": s} for s in (0.05, 0.2, 0.3, 0.4, 0.5, 0.6, 0.7, 0.8, 0.9, 0.95)]
    off = [{"best_rerank_score": s} for s in (0.01, 0.02, 0.1, 0.25)]
    gate = calibrate_gate(answerable, {"off-corpus": off}, "best_rerank_score")
    # At 0.2: 9 of 10 through, 3 of 4 stopped (min 0.75); at 0.3: 8 of 10 through, 4 of 4 stopped (min 0.8).
    assert gate["threshold"] == 0.3 and gate["answerable_through"] == 0.8
    assert gate["stopped"] == {"off-corpus": 1.0}
    # The highest threshold letting at least 90% through: 0.2 (9 of 10); 0.3 lets 8 of 10 through.
    assert gate["for_target"] == {"through_at_least": 0.9, "threshold": 0.2, "answerable_through": 0.9,
                                  "stopped": {"off-corpus": 0.75}}


def test_the_evidence_compressor_keeps_the_documents_and_cuts_their_text():
    from langchain_core.documents import Document

    from rag.answers.evidence import EvidenceCompressor

    docs = [Document(CHUNK, id="a", metadata={"number": 1}),
            Document("Sky launched in 1998. It has many channels.", id="b", metadata={"number": 2})]
    scorer = FixedScoreCrossEncoder({"Rollo": 0.9, "Sky": 0.5}, otherwise=0.1)
    best_only = EvidenceCompressor(scorer=scorer, context="evidence", sentences=1).compress_documents(docs, "q")
    assert [d.id for d in best_only] == ["a", "b"], "the same documents, in the same order"
    assert [d.page_content for d in best_only] == ["Rollo became the first ruler of Normandy.", ""]
    assert best_only[1].metadata["evidence"][0].text == "Sky launched in 1998."
    two = EvidenceCompressor(scorer=scorer, context="evidence", sentences=2).compress_documents(docs, "q")
    assert two[1].page_content == "Sky launched in 1998."
    whole = EvidenceCompressor(scorer=scorer, context="chunks").compress_documents(docs, "q")
    assert [d.page_content for d in whole] == [d.page_content for d in docs]
    windows = EvidenceCompressor(scorer=scorer, context="windows", max_chars=60).compress_documents(docs, "q")
    assert "Rollo became the first ruler of Normandy." in windows[0].page_content
    assert len(windows[0].page_content) < len(CHUNK)


def test_a_sentence_is_not_supported_by_a_chunk_that_states_other_numbers():
    sources = [source(1, "A refund takes 14 days to process."), source(2, "Orders ship from Oslo within 2 days.")]
    scorer = FixedScoreCrossEncoder({"refund": 0.97, "Oslo": 0.6})
    wrong, right = attribute("How long does a refund take?", "Refunds take 30 days. Refunds take 14 days.",
                             sources, scorer)
    assert not wrong.supported and wrong.attributed == []
    assert right.attributed == [1]


def test_a_heading_or_glossary_term_is_read_with_the_sentence_after_it():
    text = "## The cross-encoder\nIt reads the question and the passage together.\n\nCross-encoder\nA model."
    from rag.answers.evidence import evidence_units

    units = [text[a:b] for a, b in evidence_units(text)]
    assert units == ["## The cross-encoder\nIt reads the question and the passage together.", "Cross-encoder\nA model."]
