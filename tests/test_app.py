"""The Streamlit app, page by page, with AppTest: real encoders, a temporary Chroma, the stand-in LLM.

The app reads its settings from RAG_* variables, set here with monkeypatch before each run. Its cached resources
are keyed by those settings, so each test's store is its own even though the cache lives for the whole process.
"""

from __future__ import annotations

import os
import re
from pathlib import Path

import pytest
from streamlit.testing.v1 import AppTest

from rag.documents.library import Library
from rag.pipeline import Pipeline
from rag.results import Source
from rag.retrieval.store import Store
from rag.settings import Settings
from tests.conftest import DATA, RERANKER, cli_env, make_settings, threshold_between
from tests.samples import POLICY, make_image_only_pdf
from ui.chat import Turn
from ui.sidebar import OK, WARN
from ui.text import escape, linked_answer, model_label

APP = "../app.py"  # AppTest resolves it relative to this file
TIMEOUT = 240  # seconds per run: models load on the first, and the LLM shares 2 cores with everything else
REFUND = "How long does a refund take?"
# WHOLE_CHUNKS: a test that checks what the stand-in LLM answers sends it whole chunks. With only the best sentence
# (the default `context`), the test cross-encoder's best sentence for REFUND is one about refunds that does not say
# how long they take, and SmolLM2-135M answers "10 days".


def use_settings(monkeypatch, settings: Settings) -> None:
    """Point the app at `settings` (it reads RAG_* variables on every run), away from any .env in the repo."""
    monkeypatch.chdir(settings.chroma_path.parent)
    for name in [n for n in os.environ if n.startswith("RAG_")]:
        monkeypatch.delenv(name)
    for name, value in cli_env(settings).items():
        if name.startswith("RAG_"):
            monkeypatch.setenv(name, value)


def stock(settings: Settings, bi_encoder, files: dict[str, bytes]) -> None:
    store = Store(settings, bi_encoder)
    try:
        library = Library(store, settings)
        for name, data in files.items():
            assert library.ingest_bytes(name, data).status == "added"
    finally:
        store.close()


@pytest.fixture(scope="module")
def stocked_folder(tmp_path_factory, bi_encoder) -> Path:
    """A store with the policy and the sample documents, shared by the tests that only read it."""
    folder = tmp_path_factory.mktemp("stocked")
    files = {"policy.md": POLICY.encode(), **{p.name: p.read_bytes() for p in sorted(DATA.iterdir())}}
    stock(make_settings(folder), bi_encoder, files)
    return folder


@pytest.fixture
def stocked(monkeypatch, stocked_folder, ollama_url) -> Settings:
    settings = make_settings(stocked_folder, ollama_url)
    use_settings(monkeypatch, settings)
    return settings


@pytest.fixture
def empty(monkeypatch, tmp_path, ollama_url) -> Settings:
    settings = make_settings(tmp_path, ollama_url)
    use_settings(monkeypatch, settings)
    return settings


def start(page: str | None = None) -> AppTest:
    at = AppTest.from_file(APP, default_timeout=TIMEOUT)
    at.run()
    if page:
        at.switch_page(page).run()
    assert not at.exception, at.exception
    return at


def ask(at: AppTest, question: str) -> AppTest:
    at.chat_input[0].set_value(question).run()
    assert not at.exception, at.exception
    return at


def last_answer(at: AppTest):
    return at.chat_message[-1]


def texts(elements) -> list[str]:
    return [e.value for e in elements]


def source_titles(message) -> list[str]:
    """The titles of the source cards under an answer: '[n] file, p. x', as (escaped) markdown."""
    return [t for t in texts(message.markdown) if t.startswith("**\\[")]


def source_anchors(message) -> list[str]:
    return re.findall(r'id="([^"]+)"', " ".join(h.proto.body for h in message.get("html")))


def shown_ranks(message) -> list[tuple[str, str | None]]:
    """(bi rank, ce rank) of each source under an answer, in the order shown, read from the score captions."""
    ranks = []
    for caption in texts(message.caption):
        bi = re.search(r"bi-encoder [\d.]+ \(#(\d+)\)", caption)
        if bi:
            ce = re.search(r"cross-encoder .*? [\d.]+ \(#(\d+)", caption)
            ranks.append((bi.group(1), ce.group(1) if ce else None))
    return ranks


# -- chat


def test_a_question_gets_a_streamed_answer_with_its_numbered_sources(monkeypatch, stocked):
    use_settings(monkeypatch, stocked.model_copy(update={"context": "chunks"}))  # WHOLE_CHUNKS
    at = ask(start(), REFUND)
    answer = last_answer(at)
    assert answer.name == "assistant"
    assert "14" in " ".join(texts(answer.markdown))
    assert [t.split(" ")[0] for t in source_titles(answer)] == ["**\\[1\\]", "**\\[2\\]", "**\\[3\\]"]
    assert source_anchors(answer) == ["turn0-source-1", "turn0-source-2", "turn0-source-3"]
    assert any("14 days" in t for t in texts(answer.text)), "the chunk's text is shown under its source"
    captions = " ".join(texts(answer.caption))
    # The model that was loaded, by its name: the test model is not presented as the default ms-marco one.
    assert "bi-encoder" in captions and f"cross-encoder {escape(model_label(RERANKER))}" in captions
    assert ("ms-marco" in captions) == ("ms-marco" in RERANKER)
    assert not at.error
    health = " ".join(texts(at.sidebar.caption))
    assert f"{OK} Model {escape('smollm2:135m')}" in health and f"{OK} Ollama" in health


def test_switching_reranking_off_keeps_the_bi_encoder_order_and_shows_no_cross_encoder_scores(stocked):
    at = ask(start(), REFUND)
    reranked = shown_ranks(last_answer(at))
    assert [ce for _, ce in reranked] == ["1", "2", "3"]
    assert [bi for bi, _ in reranked] != ["1", "2", "3"], "this question's best chunks are reordered by reranking"
    at.toggle(key="rerank").set_value(False).run()
    at = ask(at, REFUND)
    plain = last_answer(at)
    assert shown_ranks(plain) == [("1", None), ("2", None), ("3", None)]
    assert "not reranked" in " ".join(texts(plain.caption))
    assert shown_ranks(at.chat_message[1]) == reranked, "the earlier answer keeps its own sources"


def test_a_follow_up_shows_the_standalone_question_that_was_searched_for(stocked):
    at = ask(start(), REFUND)
    at = ask(at, "And where do orders ship from?")
    searched = [c for c in texts(last_answer(at).caption) if c.startswith("Searched for:")]
    assert searched and "ship" in searched[0].lower()
    assert any("Oslo" in t for t in texts(last_answer(at).text))


def test_a_citation_links_to_the_anchor_of_its_source(stocked):
    at = start()
    source = Source(chunk_id="c1", file="policy.md", page=None, start_index=0, text="A refund takes 14 days.",
                    bi_rank=2, bi_score=0.5, ce_rank=1, ce_score=0.9, number=1)
    at.session_state["chat_turns"] = [Turn(question=REFUND, text="It takes 14 days [1].", outcome="answered",
                                           sources=[source], reranker="x")]
    at.run()
    answer = last_answer(at)
    assert "It takes 14 days [\\[1\\]](#turn0-source-1)." in texts(answer.markdown)
    assert source_anchors(answer) == ["turn0-source-1"]


def test_an_answer_stopped_while_streaming_keeps_what_it_had_marked_as_cut_off(monkeypatch):
    import streamlit as st

    from rag.results import Answer, Ranking
    from ui import answers

    class Stopped(BaseException):
        """What Streamlit raises in a run the user stops (or a new question interrupts)."""

    def write_two_pieces_then_stop(stream):
        next(stream), next(stream)
        raise Stopped

    def tokens(answer):
        for piece in ("A refund ", "takes 14 ", "days [1]."):
            answer.text += piece
            yield piece

    answer = Answer("q", "q", Ranking("q", [], [], False, None, "e"), "answered", iter(()))
    answer.tokens = tokens(answer)
    reply = answers.Reply()
    monkeypatch.setattr(st, "write_stream", write_two_pieces_then_stop)
    with pytest.raises(Stopped):
        answers.stream(answer, reply)
    assert reply.text == "A refund takes 14 " and reply.cut_off and not reply.error


def test_a_question_the_documents_do_not_cover_says_so_and_shows_the_closest_passages(stocked, bi_encoder,
                                                                                     cross_encoder):
    store = Store(stocked, bi_encoder)
    try:
        threshold = threshold_between(Pipeline(stocked, store, cross_encoder), ["What is the capital of Mongolia?"],
                                      [REFUND])
    finally:
        store.close()
    at = start()
    at.sidebar.slider(key="threshold").set_value(threshold).run()
    at = ask(at, "What is the capital of Mongolia?")
    answer = last_answer(at)
    assert any("do not seem to cover" in t for t in texts(answer.info))
    assert "**Closest passages (not sent to the LLM)**" in texts(answer.markdown)
    assert len(source_titles(answer)) == 3


def test_hybrid_search_from_the_sidebar_labels_the_fused_scores(monkeypatch, stocked):
    use_settings(monkeypatch, stocked.model_copy(update={"ollama_url": "http://127.0.0.1:9"}))  # no LLM needed
    at = start()
    at.sidebar.toggle(key="hybrid").set_value(True).run()
    at = ask(at, "Where do orders ship from?")
    captions = [c for c in texts(last_answer(at).caption) if "(#" in c]
    assert len(captions) == 3 and all(c.startswith("fused bi-encoder + BM25 ") for c in captions)
    assert any("Oslo" in t for t in texts(last_answer(at).text))


# -- chat failures


def test_ollama_unreachable_says_how_to_start_it_and_still_shows_the_sources(monkeypatch, stocked):
    use_settings(monkeypatch, stocked.model_copy(update={"ollama_url": "http://127.0.0.1:9"}))
    at = ask(start(), REFUND)
    error = " ".join(texts(last_answer(at).error))
    assert escape("Ollama is not reachable at http://127.0.0.1:9") in error and "ollama serve" in error
    assert len(source_titles(last_answer(at))) == 3, "the sources are still shown"
    assert f"{WARN} Ollama is not reachable" in " ".join(texts(at.sidebar.caption))


def test_a_model_that_is_not_pulled_says_how_to_pull_it_and_another_can_be_chosen(monkeypatch, stocked):
    # WHOLE_CHUNKS
    use_settings(monkeypatch, stocked.model_copy(update={"ollama_model": "llama3.2", "context": "chunks"}))
    at = start()
    model = at.sidebar.selectbox(key="model")
    assert model.options[0] == "llama3.2 (not pulled)" and "smollm2:135m" in model.options
    assert "ollama pull llama3.2" in " ".join(texts(at.sidebar.caption))
    at = ask(at, REFUND)
    assert escape("`ollama pull llama3.2`") in " ".join(texts(last_answer(at).error))
    at.sidebar.selectbox(key="model").set_value("smollm2:135m").run()
    at = ask(at, REFUND)
    assert not last_answer(at).error and "14" in " ".join(texts(last_answer(at).markdown))


def test_with_no_documents_every_page_points_to_the_documents_page(empty):
    at = start()
    assert [link.proto.page for link in at.page_link] == ["documents"]
    at = ask(at, REFUND)
    assert any("no documents yet" in w for w in texts(last_answer(at).warning))
    assert [link.proto.page for link in last_answer(at).get("page_link")] == ["documents"]
    at.switch_page("pages/compare.py").run()
    at.text_input(key="compare_question").input(REFUND).run()
    assert any("no documents yet" in w for w in texts(at.warning)) and not at.exception


def test_a_page_opened_by_its_url_while_another_session_starts_the_navigation_still_gets_its_sidebar(monkeypatch,
                                                                                                   empty):
    """Eight sessions opening /documents on a just-started server: Streamlit chose to run the page file alone for
    one of them, then another session's run called `st.navigation`, which turns Streamlit's process-wide "pages
    folder" flag off before this page asks for its context. The page must still run inside app.py."""
    from streamlit.runtime.pages_manager import PagesManager
    from streamlit.runtime.scriptrunner import script_runner

    page_file_alone = script_runner._mpa_v1

    def another_session_navigates_meanwhile(main_script_path: str) -> None:
        PagesManager.uses_pages_directory = False
        page_file_alone(main_script_path)

    monkeypatch.setattr(script_runner, "_mpa_v1", another_session_navigates_meanwhile)
    at = AppTest.from_file(APP, default_timeout=TIMEOUT)
    at.switch_page("pages/documents.py").run()
    assert not at.exception, at.exception
    assert [t.value for t in at.title] == ["Documents"] and "Add to library" in [b.label for b in at.button]
    assert at.sidebar.toggle, "app.py drew the sidebar's settings around the page"


def test_document_text_and_names_are_shown_as_text_not_markup(monkeypatch, empty, bi_encoder):
    hostile = "Refunds take **14 days** <b>bold</b> ![x](http://example.invalid/x.png) $x^2$ :red[red]."
    stock(empty, bi_encoder, {"_notes_ *x*.md": hostile.encode()})
    use_settings(monkeypatch, empty.model_copy(update={"ollama_url": "http://127.0.0.1:9"}))
    at = ask(start(), REFUND)
    answer = last_answer(at)
    assert hostile in texts(answer.text)
    assert source_titles(answer) == ["**\\[1\\] \\_notes\\_ \\*x\\*.md**"]


def test_markdown_in_what_documents_and_the_llm_write_is_escaped():
    written = "**b** <b>x</b> ![i](http://e/i.png) $x$ :red[r] a|b ~s~ &amp;\n# h\n- item\n1. one\n    code"
    assert escape(written) == ("\\*\\*b\\*\\* \\<b\\>x\\</b\\> !\\[i\\](http\\://e/i.png) \\$x\\$ \\:red\\[r\\] "
                               "a\\|b \\~s\\~ \\&amp;  \n\\# h  \n\\- item  \n1\\. one  \ncode")


def test_answer_text_is_escaped_and_only_known_citations_are_linked():
    linked = linked_answer("See ![x](http://e/x) and [1], [2, 5].", "turn3", {1, 2})
    assert linked == ("See !\\[x\\](http\\://e/x) and [\\[1\\]](#turn3-source-1), "
                      "[\\[2\\]](#turn3-source-2) \\[5\\].")


# -- documents


def test_uploads_report_added_unchanged_replaced_and_rejected_and_fill_the_table(empty):
    at = start("pages/documents.py")
    notes = b"The office plants are watered on Mondays by the facilities team."
    at.file_uploader[0].set_value([("policy.md", POLICY.encode(), "text/markdown"),
                                   ("notes.txt", notes, "text/plain"),
                                   ("scan.pdf", make_image_only_pdf(), "application/pdf")])
    at.button[0].click().run()
    assert not at.exception, at.exception
    assert [s.value.split(":")[0] for s in at.success] == ["**added** policy.md", "**added** notes.txt"]
    assert len(at.error) == 1 and at.error[0].value.startswith("**rejected** scan.pdf")
    assert len(at.status) == 1 and len(at.status[0].get("progress")) == 2
    table = at.dataframe[0].value
    assert list(table["name"]) == ["notes.txt", "policy.md"]
    assert list(table.columns) == ["name", "type", "pages", "chunks", "size (KB)", "added"]
    assert list(table["type"]) == ["text", "markdown"] and all(table["chunks"] >= 1)
    assert "2 documents" in " ".join(texts(at.sidebar.caption))

    at.file_uploader[0].set_value([("policy.md", POLICY.encode(), "text/markdown"),
                                   ("notes.txt", notes.replace(b"Mondays", b"Fridays"), "text/plain")])
    at.button[0].click().run()
    assert [i.value.split(":")[0] for i in at.info] == ["**unchanged** policy.md"]
    assert [s.value.split(":")[0] for s in at.success] == ["**replaced** notes.txt"]
    assert not at.error and len(at.dataframe[0].value) == 2


def test_an_empty_library_offers_the_sample_documents(empty):
    at = start("pages/documents.py")
    next(b for b in at.button if b.label == "Add the sample documents").click().run()
    assert not at.exception, at.exception
    assert sorted(at.dataframe[0].value["name"]) == sorted(p.name for p in DATA.iterdir())
    assert [s.value.split(" ")[0] for s in at.success] == ["**added**"] * len(list(DATA.iterdir()))


def test_a_document_can_be_deleted(empty, bi_encoder):
    stock(empty, bi_encoder, {"policy.md": POLICY.encode(), "notes.txt": b"The plants are watered on Mondays."})
    at = start("pages/documents.py")
    at.multiselect(key="documents_to_delete").select("notes.txt").run()
    delete = next(b for b in at.button if b.label == "Delete")
    delete.click().run()
    assert not at.exception, at.exception
    assert any(s.value.startswith("Deleted notes.txt (1 chunk)") for s in at.success)
    assert list(at.dataframe[0].value["name"]) == ["policy.md"]
    assert "1 document," in " ".join(texts(at.sidebar.caption))


# -- compare


def test_compare_shows_both_orders_of_one_pool_with_moves_and_answers_from_each_side(stocked):
    at = start("pages/compare.py")
    at.text_input(key="compare_question").input(REFUND).run()
    assert not at.exception, at.exception
    bi, ce = (d.value for d in at.dataframe)
    assert list(bi["rank"]) == list(range(1, 21)) and list(ce["rank"]) == list(range(1, 21))
    assert sorted(bi["source"]) == sorted(ce["source"]), "the same candidate pool on both sides"
    assert (bi["top k"] == "✔").sum() == 3 and (ce["top k"] == "✔").sum() == 3
    assert list(bi["top k"][:3]) == ["✔"] * 3 and list(ce["top k"][:3]) == ["✔"] * 3
    assert all(m.startswith(("▲ +", "▼ −", "= 0")) for m in ce["move"])
    assert any(m != "= 0" for m in ce["move"])
    titles = texts(at.subheader)
    assert "Bi-encoder order" in titles and "Cross-encoder order" in titles
    captions = texts(at.caption)
    assert escape("embedder: sentence-transformers/all-MiniLM-L6-v2") in captions
    assert escape(f"cross-encoder: {model_label(RERANKER)}") in captions
    assert [m.label for m in at.metric] == ["Candidates", "Bi-encoder retrieval", "Cross-encoder rerank"]
    (chart,) = at.get("vega_lite_chart")
    assert '"bi-encoder"' in chart.proto.spec and '"cross-encoder"' in chart.proto.spec, "the slope chart's two axes"

    next(b for b in at.button if b.label == "Generate both answers").click().run()
    assert not at.exception, at.exception
    left, right = at.columns[-2:]
    assert "**Answer from the bi-encoder top 3**" in texts(left.markdown)
    assert "**Answer from the cross-encoder top 3**" in texts(right.markdown)
    assert not at.error
    for side, name in zip((left, right), ("bi-encoder", "cross-encoder")):
        answer = [t for t in texts(side.markdown) + texts(side.info) + texts(side.warning)
                  if not t.startswith("**Answer")]
        assert answer and answer[0].strip(), "each side has an answer (or the model's decline, or the warning that no " \
                                             "source supports it)"
        (sent,) = [h.proto.body for h in side.get("html")]
        assert [f"compare-{name}-source-{n}" for n in (1, 2, 3)] == re.findall(r'id="([^"]+)"', sent)
        assert sent.count("<mark") == 3, "each sent chunk with its evidence sentence highlighted"


def test_a_store_built_with_another_embedder_offers_to_rebuild_it(monkeypatch, empty, bi_encoder, tmp_path):
    import shutil

    stock(empty, bi_encoder, {"policy.md": POLICY.encode()})
    other = tmp_path / "other-embedder"
    shutil.copytree(empty.reranker_model, other)  # a different real model, loaded as a bi-encoder
    use_settings(monkeypatch, empty.model_copy(update={"embedding_model": str(other)}))
    at = start()
    assert any("was built with sentence-transformers/all-MiniLM-L6-v2" in e for e in texts(at.error))
    at.button[0].click().run()
    assert not at.exception and any("re-embedded" in s.label for s in at.status)
    at.button[0].click().run()  # Continue
    assert not at.error
    assert any("1 document" in m for m in texts(at.sidebar.markdown) + texts(at.sidebar.caption))


def test_a_cross_encoder_that_cannot_load_leaves_answers_in_bi_encoder_order_with_a_notice(monkeypatch, stocked):
    use_settings(monkeypatch, stocked.model_copy(update={"reranker_model": "cross-encoder/not-on-this-machine"}))
    at = start()
    toggle = at.toggle(key="rerank_unavailable")
    assert toggle.label.endswith("unavailable") and toggle.disabled and not toggle.value
    assert "cross-encoder/not-on-this-machine" in toggle.help.replace("\\", "")
    ask(at, REFUND)
    message = last_answer(at)
    assert not message.error, "an answer, not an error"
    notices = [w.replace("\\", "") for w in texts(message.warning)]
    assert any(w.startswith("Reranking unavailable: cannot load cross-encoder cross-encoder/not-on-this-machine")
               and "RAG_RERANKER_MODEL" in w for w in notices), notices
    assert [bi for bi, ce in shown_ranks(message)] == ["1", "2", "3"] and all(ce is None for _, ce in shown_ranks(message))


def test_compare_without_a_cross_encoder_shows_the_bi_encoder_side_and_why_the_other_is_missing(monkeypatch, stocked):
    use_settings(monkeypatch, stocked.model_copy(update={"reranker_model": "cross-encoder/not-on-this-machine"}))
    at = start("pages/compare.py")
    at.text_input(key="compare_question").input(REFUND).run()
    assert not at.exception, at.exception
    (bi,) = (d.value for d in at.dataframe)
    assert list(bi["rank"]) == list(range(1, 21))
    assert any("Reranking unavailable" in w and "not-on-this-machine" in w.replace("\\", "") for w in texts(at.warning))
    assert not at.get("vega_lite_chart"), "no rank moves without a second ranking"
    next(b for b in at.button if b.label == "Generate both answers").click().run()
    assert not at.exception, at.exception
    assert "**Answer from the bi-encoder top 3**" in texts(at.columns[-2].markdown)
    assert "**Answer from the cross-encoder top 3**" not in texts(at.columns[-1].markdown)