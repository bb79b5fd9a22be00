"""Write the sample PDF data/evaluating-rag.pdf: "Evaluating a RAG pipeline: a field guide", four pages,
one topic per page, so that a cited page number matters.

The text was written for this project and is released under CC0 (see docs/sample-data.md).
The output is deterministic: fixed creation date, core font only, so re-running gives identical bytes.
After writing, the script reads the PDF back with pypdf and checks that every page holds its own facts
(and no other page does); it exits non-zero if not.

    .venv/bin/python scripts/make_sample_pdf.py            # writes data/evaluating-rag.pdf
    .venv/bin/python scripts/make_sample_pdf.py --check    # only checks the existing file
"""

from __future__ import annotations

import argparse
import re
import sys
from datetime import datetime, timezone
from pathlib import Path

TITLE = "Evaluating a RAG pipeline: a field guide"
OUT = Path(__file__).resolve().parent.parent / "data" / "evaluating-rag.pdf"

# (heading, paragraphs, facts that must be extracted from this page and from no other page).
# Core-font text: latin-1 only, so straight quotes and plain hyphens.
PAGES: list[tuple[str, list[str], list[str]]] = [
    (
        "1. What to measure",
        [
            "A retrieval pipeline can fail in two places: the retriever may not find the passage that holds the "
            "answer, or the language model may be given that passage and still answer badly. Measure the two "
            "separately. This page is about the first question: did the right passages come back, and how high "
            "up the list were they?",
            "Three numbers cover most needs. Each one is computed for every question and then averaged over the "
            "whole test set.",
            "Recall@k asks: of the passages that answer the question, how many are among the top k results? If a "
            "question has one relevant passage and it appears in the top 5, Recall@5 is 1 for that question; if "
            "it is missing, Recall@5 is 0. Recall@k ignores the order inside the top k. It matters most in a RAG "
            "pipeline, because the model only sees what it is sent: a passage at rank 6 is invisible when only 5 "
            "passages are sent.",
            "MRR, the mean reciprocal rank, looks only at the first relevant result. The reciprocal rank of a "
            "question is 1 divided by the position of that result: 1 at rank 1, 0.5 at rank 2, and 0.25 at "
            "rank 4. A question with no relevant result in the list scores 0. MRR rewards putting one good "
            "passage at the very top, which suits questions that have a single answer.",
            "nDCG, normalised discounted cumulative gain, gives credit for every relevant result, but discounts "
            "it by position: the gain of a hit is divided by log2(rank + 1), so a hit at rank 1 counts fully and "
            "a hit at rank 10 counts less than a third as much. The total is then divided by the best total a "
            "perfect ordering could reach, so nDCG always lies between 0 and 1. It is the right choice when "
            "passages have graded relevance, for example 2 for \"answers the question fully\" and 1 for \"helps "
            "a little\".",
            "Rule of thumb for this field guide: report Recall@k with k equal to the number of passages you send "
            "to the model, and report MRR as a second number. Keep nDCG for test sets with graded labels.",
        ],
        ["Recall@k", "0.25 at", "log2(rank + 1)", "with k equal to the number of passages"],
    ),
    (
        "2. Building a test set",
        [
            "A test set is a list of questions, each paired with the passages that answer it. Without one, every "
            "change to chunking, models or prompts is judged on a few questions typed by hand, and those tend to "
            "be the questions that already work.",
            "Where the questions come from. The best source is real questions from the people who will use the "
            "system: a help desk, a search log, a chat history. If there are none yet, write them while reading "
            "the documents, one or two per section, and phrase them the way a user would. Do not copy a sentence "
            "from the text and turn it into a question: a question that repeats the passage word for word is too "
            "easy for any retriever.",
            "Labelling the answers. For each question, record the document and the page or section that holds the "
            "answer, and if possible the exact sentence. Labels by document and page, rather than by chunk id, "
            "have a practical advantage: they survive a change of chunk size, because a chunk can be matched to a "
            "label by checking whether it contains the labelled sentence.",
            "How many questions. A test set of 30 to 50 questions is enough to see large differences, such as "
            "reranking against no reranking, or a chunk size of 300 against 1,500 characters. Small differences, "
            "a few points of recall, need several hundred questions before they stand out from the noise. Look at "
            "the spread as well as the average: if a change fixes five questions and breaks four, the average "
            "hides a real trade-off.",
            "Include the hard cases. Add questions whose answer is spread over two passages, questions that use a "
            "synonym instead of the word in the document, and a handful of questions that the documents cannot "
            "answer at all. For those, the right behaviour is to say so, and the test set should record that as "
            "the expected outcome.",
            "Freeze it. Keep the test set in version control next to the documents it refers to, and change it "
            "only on purpose. A test set that grows every time a bug is found becomes a regression suite, which "
            "is useful, but note when each question was added so that old and new scores stay comparable.",
        ],
        ["30 to 50 questions", "large differences", "regression suite"],
    ),
    (
        "3. Reading the numbers",
        [
            "The worked example on this page is invented for illustration; its numbers do not come from a real "
            "system. A team indexes 400 pages of product manuals and writes 40 test questions. Their first "
            "pipeline sends the top 3 chunks from the bi-encoder straight to the language model. They then add "
            "a cross-encoder that rescores the bi-encoder's top 40 candidates and keeps the best 3.",
            "In the worked example, reranking raised Recall@3 from 0.62 to 0.81. Over the same questions, MRR "
            "rose from 0.48 to 0.70. How should numbers like these be read?",
            "Look at questions, not only at averages. On 40 questions, the rise in Recall@3 means that about "
            "eight more questions now have their answer in front of the model. Open those questions and check "
            "that the new passages really contain the answers. Then open the questions that got worse: in the "
            "worked example, two questions lost their passage after reranking, both because the answer sat in a "
            "table that text extraction had flattened into a line of numbers.",
            "Check the ceiling. After reranking, Recall@3 can never be higher than the bi-encoder's recall at "
            "the number of candidates it fetched, because the cross-encoder only reorders what it is given. In "
            "the worked example, the bi-encoder's Recall@40 was 0.90. The gap between 0.81 and 0.90 is for the "
            "reranker to close; the questions missing even from the candidate list need better chunking or a "
            "better embedding model.",
            "Separate retrieval from generation. A good Recall@3 does not guarantee good answers. Grade a sample "
            "of answers by hand on two points: is every claim supported by a cited passage, and does the answer "
            "address the question that was asked? If retrieval is good and the answers are poor, change the "
            "prompt or the model, not the retriever.",
            "Beware of small denominators. With 40 questions, each question is worth 0.025 of recall, so a change "
            "of 0.03 may be a single question and should not decide anything on its own.",
        ],
        ["0.62 to 0.81", "0.48 to 0.70", "Recall@40 was 0.90", "0.025 of recall"],
    ),
    (
        "4. Latency: where the time goes",
        [
            "A question passes through four steps: embedding the question, searching the vector store, reranking "
            "the candidates and generating the answer. Time each step on its own, because each one grows with "
            "something different.",
            "Embedding the question is one run of the bi-encoder over a short text and usually takes a few "
            "milliseconds on a CPU. Searching the store with an approximate nearest neighbour index takes "
            "milliseconds too, even with hundreds of thousands of chunks.",
            "Reranking is different. The cross-encoder costs about one forward pass per candidate, because it "
            "reads the question and each candidate passage together; nothing can be computed in advance when the "
            "documents are ingested. Its cost therefore grows in a straight line with the number of candidates "
            "and with their length: twice the candidates means roughly twice the reranking time, and a "
            "1,000-character chunk costs more than a 300-character one. Batching the pairs helps, a lot on a GPU "
            "and a little on a CPU, but it does not change the proportion.",
            "Fewer candidates means faster reranking, at a price: the reranker can only promote passages that the "
            "bi-encoder fetched. Measure recall at several candidate counts, for example 10, 20, 50 and 100, and "
            "choose the smallest count after which recall stops rising.",
            "Generation is usually the slowest step with a local model. Its time depends on the length of the "
            "prompt, which is mostly the kept passages, and on the length of the answer. Keeping 3 passages "
            "instead of 10 shortens the prompt and tends to give more focused answers as well.",
            "In the worked example from page 3 (invented numbers, not a benchmark): on a laptop CPU, embedding "
            "the question took 15 ms, the vector search 5 ms, reranking 40 candidates 900 ms, and generating the "
            "answer 6 seconds. Halving the candidates cut reranking to about 450 ms, with no loss of Recall@3 in "
            "that example.",
            "Report latency as the median and the 95th percentile over the whole test set, never as a single run: "
            "the first question after start-up includes loading the models and is always slow.",
        ],
        ["one forward pass per candidate", "900 ms", "95th percentile"],
    ),
]


def _words(paragraphs: list[str]) -> int:
    return sum(len(p.split()) for p in paragraphs)


def build(path: Path) -> None:
    from fpdf import FPDF

    class GuidePDF(FPDF):
        def footer(self) -> None:
            self.set_y(-15)
            self.set_font("Helvetica", size=8)
            self.cell(0, 10, f"{TITLE} - page {self.page_no()} of {len(PAGES)}", align="C")

    pdf = GuidePDF(format="A4", unit="mm")
    pdf.set_creation_date(datetime(2026, 1, 1, tzinfo=timezone.utc))
    pdf.set_title(TITLE)
    pdf.set_author("Sample data written for this project (CC0)")
    pdf.set_subject("Measuring retrieval quality, building a test set, reading results, latency")
    pdf.set_creator("scripts/make_sample_pdf.py")
    pdf.set_producer("scripts/make_sample_pdf.py")
    pdf.set_margins(20, 20, 20)
    pdf.set_auto_page_break(True, margin=20)
    for number, (heading, paragraphs, _facts) in enumerate(PAGES, start=1):
        pdf.add_page()
        if number == 1:
            pdf.set_font("Helvetica", "B", 18)
            pdf.multi_cell(0, 9, TITLE, new_x="LMARGIN", new_y="NEXT")
            pdf.ln(4)
        pdf.set_font("Helvetica", "B", 14)
        pdf.multi_cell(0, 8, heading, new_x="LMARGIN", new_y="NEXT")
        pdf.ln(2)
        pdf.set_font("Helvetica", size=11)
        for paragraph in paragraphs:
            pdf.multi_cell(0, 5.6, paragraph, new_x="LMARGIN", new_y="NEXT")
            pdf.ln(2.5)
        if pdf.page_no() != number:
            raise SystemExit(f"page {number} ({heading!r}) overflowed onto the next page; shorten it")
    path.parent.mkdir(parents=True, exist_ok=True)
    pdf.output(str(path))


def check(path: Path) -> list[str]:
    """Problems found in the PDF at `path`; empty if every page holds its own facts and no other page does."""
    from pypdf import PdfReader

    reader = PdfReader(str(path))
    texts = [page.extract_text() or "" for page in reader.pages]
    problems = []
    if len(texts) != len(PAGES):
        problems.append(f"{len(texts)} pages, expected {len(PAGES)}")
    for number, (heading, paragraphs, facts) in enumerate(PAGES, start=1):
        words = _words(paragraphs)
        if not 250 <= words <= 400:
            problems.append(f"page {number}: {words} words, expected 250-400")
        for fact in [heading, *facts]:
            for other, text in enumerate(texts, start=1):
                # Raw extracted text, not whitespace-normalised: a fact broken by a line wrap would also be
                # broken in the chunks the app stores.
                found = fact.lower() in text.lower()
                if other == number and not found:
                    flat = re.sub(r"\s+", " ", text).lower()
                    how = "split by a line break" if fact.lower() in flat else "missing"
                    problems.append(f"page {number}: {fact!r} {how} in the extracted text")
                elif other != number and found:
                    problems.append(f"page {number}: {fact!r} also on page {other}")
    return problems


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, default=OUT, help=f"where to write the PDF (default {OUT})")
    parser.add_argument("--check", action="store_true", help="only check the existing PDF, do not write it")
    args = parser.parse_args(argv)
    if not args.check:
        build(args.out)
    problems = check(args.out)
    for problem in problems:
        print(f"FAIL {problem}", file=sys.stderr)
    if not problems:
        print(f"ok {args.out}: {len(PAGES)} pages, each page's facts found on that page only")
    return 1 if problems else 0


if __name__ == "__main__":
    sys.exit(main())
