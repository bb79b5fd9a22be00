"""What an answer shows of what retrieval found: citations checked against the sources (the model's own, the ones
it left out, the sentences no source supports), the evidence sentence of each source, and the model's decline.

The app runs with AppTest on the real encoders and a real store; where a test needs the LLM to say something
exact, the app's chat-model factory is `tests.fakes.ScriptedChat` (the Pipeline's interface), so that everything
after the LLM (attribution, declines, the view) is the real thing.
"""

from __future__ import annotations

import re
from html.parser import HTMLParser

from rag.answers.declines import DECLINED, UNSUPPORTED_ANSWER
from rag.answers.prompt import REWRITE_PROMPT
from rag.results import AnswerSentence, Evidence, Source
from tests.fakes import ScriptedChat
from tests.test_app import REFUND, ask, last_answer, source_titles, start, stocked, stocked_folder, texts  # noqa: F401
from ui import resources
from ui.evidence import around, card_evidence, compact_evidence
from ui.text import LEGEND, UNSUPPORTED, attributed_answer, escape

# Said of nothing in the documents; long enough that the question it follows does not carry it to a source.
MOON = "The moon is made of green cheese and astronauts eat it for breakfast every Tuesday in Paris."


def script(monkeypatch, *replies: str) -> ScriptedChat:
    """The app's LLM replies with `replies`, in order."""
    chat = ScriptedChat(*replies)
    monkeypatch.setattr(resources, "chat_model", chat)
    return chat


def htmls(element) -> list[str]:
    return [h.proto.body for h in element.get("html")]


class Marks(HTMLParser):
    """The text inside each <mark> of an HTML fragment, as a browser shows it (entities decoded)."""

    def __init__(self, fragment: str) -> None:
        super().__init__()
        self.found: list[str] = []
        self._inside = False
        self.feed(fragment)

    def handle_starttag(self, tag, attrs):
        if tag == "mark":
            self._inside, self.found = True, [*self.found, ""]

    def handle_endtag(self, tag):
        if tag == "mark":
            self._inside = False

    def handle_data(self, data):
        if self._inside:
            self.found[-1] += data


def marked(fragment: str) -> list[str]:
    return Marks(fragment).found


# -- in the app


def test_an_answer_gets_the_citations_the_model_left_out_and_flags_what_no_source_supports(monkeypatch, stocked):
    script(monkeypatch, f"A refund takes 14 days to process. {MOON}")
    at = start()
    # Without reranking: the bi-encoder's cosine judges the sentences, and the moon is far from every source.
    at.toggle(key="rerank").set_value(False).run()
    answer = last_answer(ask(at, REFUND))
    (shown,) = [t for t in texts(answer.markdown) if "refund takes" in t]
    found = re.fullmatch(r"A refund takes 14 days to process "
                         r"\[:violet-badge\[⟨(\d)⟩\]\]\(#turn0-source-(\d)\)\. (.*)", shown)
    assert found, shown
    assert found.group(1) == found.group(2), "the attributed citation links to its own source"
    assert found.group(3) == f"{escape(MOON)} {UNSUPPORTED}", "the unsupported sentence is flagged, with no link"
    assert LEGEND in texts(answer.caption), "a legend says which citation is which"
    cards = [h for h in htmls(answer) if "<mark" in h]
    attributed = cards[int(found.group(1)) - 1]
    assert "14 days" in marked(attributed)[0], "the attributed source's evidence says what the sentence says"
    at.run()
    assert shown in texts(last_answer(at).markdown) and len(htmls(last_answer(at))) == len(htmls(answer)), \
        "a redraw from the session shows the same"


def test_each_source_card_shows_its_evidence_sentence_highlighted_without_opening_the_chunk(monkeypatch, stocked):
    script(monkeypatch, "A refund takes 14 days [1].")
    answer = last_answer(ask(start(), REFUND))
    cards = [h for h in htmls(answer) if "<mark" in h]
    assert len(cards) == len(source_titles(answer)) == 3
    assert sum("Best evidence of all sources" in h for h in cards) == 1
    assert "14 days to process" in marked(cards[0])[0], "the sentence of source [1] that answers the question"
    assert "sentence score 0." in cards[0] and "(cross-encoder)" in cards[0]
    for expander in answer.get("expander"):
        assert not expander.get("html"), "the evidence is on the card, not inside the chunk's text"
    assert any(t.startswith("A refund takes 14 days [\\[1\\]](#turn0-source-1)") for t in texts(answer.markdown))


def test_a_declined_answer_says_the_model_found_no_answer_and_keeps_the_sources_it_was_sent(monkeypatch, stocked):
    script(monkeypatch, "The documents do not contain the answer.")
    answer = last_answer(ask(start(), REFUND))
    (info,) = texts(answer.info)
    assert info.startswith(f"**{DECLINED}**") and "The documents do not contain the answer." in info
    assert "do not seem to cover" not in info, "not the not-covered message"
    assert not answer.error and LEGEND not in texts(answer.caption)
    assert "**Sources (sent to the LLM)**" in texts(answer.markdown)
    assert len(source_titles(answer)) == 3
    assert sum("<mark" in h for h in htmls(answer)) == 3, "with their evidence"


def test_an_answer_no_source_supports_says_it_is_not_from_the_documents_and_keeps_its_text(monkeypatch, stocked):
    script(monkeypatch, MOON)
    at = start()
    at.toggle(key="rerank").set_value(False).run()  # the bi-encoder judges, and the moon is far from every source
    answer = last_answer(ask(at, REFUND))
    (warning,) = texts(answer.warning)
    assert warning.startswith(f"**{UNSUPPORTED_ANSWER}** It wrote:") and escape(MOON) in warning
    assert not answer.info and LEGEND not in texts(answer.caption)
    assert "**Sources (sent to the LLM; none supports the answer)**" in texts(answer.markdown)
    assert len(source_titles(answer)) == 3
    at.run()
    assert texts(last_answer(at).warning) == [warning], "a redraw from the session shows the same"


def test_a_declined_answer_is_not_used_to_rewrite_the_next_question(monkeypatch, stocked):
    chat = script(monkeypatch, "The documents do not contain the answer.", "Orders ship from Oslo [1].")
    at = ask(start(), REFUND)
    at = ask(at, "Where do orders ship from?")
    asked = [m.content for messages in chat.sent for m in messages]
    assert not any(REWRITE_PROMPT in m for m in asked), "no rewrite request: the only earlier turn was declined"
    assert not [c for c in texts(last_answer(at).caption) if c.startswith("Searched for:")]
    assert any("Oslo" in t for t in texts(last_answer(at).markdown)) and not at.error
    declined = at.chat_message[1]  # redrawn from the session
    assert texts(declined.info)[0].startswith(f"**{DECLINED}**") and sum("<mark" in h for h in htmls(declined)) == 3


# -- the parts, on hand-made answers


def source(number: int, text: str, file: str = "doc.md") -> Source:
    return Source(chunk_id=f"c{number}", file=file, page=None, start_index=0, text=text, bi_rank=number,
                  bi_score=0.5, ce_rank=number, ce_score=0.9, number=number)


def sentences(text: str, *parts: tuple[str, list[int], list[int], bool]) -> list[AnswerSentence]:
    result = []
    for piece, cited, attributed, supported in parts:
        start = text.index(piece)
        result.append(AnswerSentence(start, start + len(piece), piece, cited, attributed, 0.9 if supported else 0.1,
                                     supported))
    return result


def test_attributed_citations_look_apart_from_the_models_and_an_unsupported_sentence_links_nowhere():
    text = "Rollo ruled *first*. [1] They spoke <b>French</b> [2].\nThe moon is cheese [1]. ![x](http://e/x)"
    parts = sentences(text, ("Rollo ruled *first*. [1]", [1], [1], True),
                      ("They spoke <b>French</b> [2].", [2], [3], True), ("The moon is cheese [1].", [1], [], False))
    shown = attributed_answer(text, parts, "turn0", {1, 2, 3})
    assert shown == (
        "Rollo ruled \\*first\\*. [\\[1\\]](#turn0-source-1) "
        "They spoke \\<b\\>French\\</b\\> [\\[2\\]](#turn0-source-2) [:violet-badge[⟨3⟩]](#turn0-source-3).  \n"
        f"The moon is cheese \\[1\\]. {UNSUPPORTED} !\\[x\\](http\\://e/x)")


def test_evidence_html_escapes_the_document_and_marks_exactly_the_sentence():
    text = "Intro <script>alert(1)</script> here. The best & only <b>sentence</b>. After it, more text."
    sentence = "The best & only <b>sentence</b>."
    start = text.index(sentence)
    evidence = [Evidence(1, start, start + len(sentence), 0.97, sentence)]
    card = card_evidence(source(1, text), evidence, "cross-encoder", evidence[0])
    assert "<script>" not in card and "<b>" not in card and "&lt;script&gt;" in card
    assert marked(card) == [sentence] and "Best evidence of all sources · sentence score 0.9700" in card
    line = compact_evidence([source(1, text, file="<i>x</i>.md"), source(2, "Nothing scored here.")],
                            {1: evidence}, "compare-bi-encoder", "bi-encoder cosine")
    assert 'id="compare-bi-encoder-source-1"' in line and 'id="compare-bi-encoder-source-2"' in line
    assert "<i>" not in line and marked(line) == [sentence] and "Nothing scored here." in line


def test_the_evidence_window_keeps_the_sentence_whole_and_marks_where_the_chunk_was_cut():
    text = "First sentence here. " * 20 + "The evidence sentence. " + "Later sentence there. " * 20
    start = text.index("The evidence")
    evidence = Evidence(1, start, start + len("The evidence sentence."), 0.5, "The evidence sentence.")
    before, sentence, after = around(text, evidence, 60)
    assert sentence == "The evidence sentence."
    assert before.startswith("… First") and before.endswith("here. ") and len(before) <= 62
    assert after.startswith(" Later") and after.endswith("there. …") and len(after) <= 62
    assert around(text, evidence, 5000) == (text[:start], sentence, text[start + len(sentence):].rstrip())
