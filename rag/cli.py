"""`python -m rag ...`: the same operations as the app's pages, for scripts and people.

Every failure a user can cause or fix prints one line `error: ...` (no traceback) and exits 1; the store is
left as it was.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import sys
from collections.abc import Iterator, Sequence
from pathlib import Path

from .answers.declines import sources_heading
from .cli_conversations import add_parser as add_conversations_parser
from .cli_conversations import cmd_conversations
from .errors import RagError
from .settings import Settings
from .text import snippet


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="python -m rag", description="Chat with your documents, from the shell. "
                                     "Every RAG_* setting applies (see README).")
    sub = parser.add_subparsers(dest="command", required=True)
    p = sub.add_parser("ingest", help="add files or folders to the store")
    p.add_argument("paths", nargs="+", type=Path)
    p.add_argument("--json", action="store_true", help="print outcomes as JSON")
    p = sub.add_parser("docs", help="list the documents in the store")
    p.add_argument("--json", action="store_true")
    p = sub.add_parser("delete", help="remove a document and all its chunks")
    p.add_argument("name")
    for name, text in (("retrieve", "rank the candidates for a question (no LLM)"),
                       ("ask", "answer a question from the documents, with sources")):
        p = sub.add_parser(name, help=text)
        p.add_argument("question")
        rerank = p.add_mutually_exclusive_group()
        rerank.add_argument("--no-rerank", action="store_true", help="keep the bi-encoder order")
        rerank.add_argument("--rerank", action="store_true",
                            help="rerank or fail (by default, a cross-encoder that cannot load leaves the bi-encoder "
                                 "order, with a notice on stderr)")
        p.add_argument("--hybrid", action=argparse.BooleanOptionalAction, default=None,
                       help="fetch candidates with BM25 and the bi-encoder together (default RAG_HYBRID)")
        p.add_argument("--candidates", type=int, help="candidates fetched (default RAG_CANDIDATES)")
        p.add_argument("--keep", type=int, help="chunks kept (default RAG_KEEP)")
        p.add_argument("--json", action="store_true")
    p = sub.add_parser("doctor", help="check Ollama, the model, the encoders and the store; say how to fix problems")
    p.add_argument("--only", choices=["reranker"], help="check only this part")
    sub.add_parser("repair", help="remove chunks left by an interrupted ingest")
    sub.add_parser("rebuild", help="re-embed every chunk with the configured embedder (after changing it)")
    p = sub.add_parser("eval", help="retrieval metrics per mode on a BEIR folder or a QA file; answers with --answers")
    source = p.add_mutually_exclusive_group(required=True)
    source.add_argument("--beir", type=Path, metavar="DIR", help="a dataset in BEIR layout")
    source.add_argument("--qa", type=Path, metavar="QA.jsonl", help="questions with answer strings (needs --docs)")
    source.add_argument("--answers", type=Path, metavar="QA.jsonl",
                        help="ask the LLM every question and measure the answers (needs --docs)")
    p.add_argument("--docs", type=Path, metavar="DIR", help="the documents the QA file is about")
    p.add_argument("--unanswerable", type=Path, nargs="*", default=[], metavar="FILE",
                   help="with --answers: files of questions the documents do not answer (each scored for declines)")
    p.add_argument("--modes", default=None,
                   help="comma-separated modes (default dense,rerank,hybrid,hybrid-rerank; with --answers dense,rerank)")
    p.add_argument("--level", choices=["doc", "chunk"], default="doc", help="score documents or chunks")
    p.add_argument("--candidates", type=int, default=100, help="candidates fetched per question")
    p.add_argument("--limit", type=int, help="evaluate only the first N questions (of each file, with --answers)")
    p.add_argument("--offset", type=int, default=0, help="with --answers: skip the first N questions of each file")
    p.add_argument("--gate-only", action="store_true",
                   help="with --answers: apply the not-covered gate without asking the LLM (to calibrate it)")
    p.add_argument("--json", type=Path, metavar="FILE", help="also write the full report as JSON")
    p.add_argument("--index", type=Path, metavar="DIR", help="keep the index in DIR and reuse it next time")
    add_conversations_parser(sub)
    p = sub.add_parser("settings", help="list every setting with its value and description")
    p.add_argument("--markdown", action="store_true", help="as a markdown table, with defaults (for the README)")
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        settings = Settings()
    except Exception as exc:  # pydantic's ValidationError, over several lines
        lines = [ln.strip() for ln in str(exc).splitlines() if ln.strip()]
        return _fail(f"bad setting: {' '.join(lines[1:3]) if len(lines) > 1 else lines[0]}")
    try:
        if args.command == "doctor":
            from .doctor import run_doctor

            return run_doctor(settings, print, only=args.only)
        return COMMANDS[args.command](args, settings)
    except RagError as exc:
        return _fail(str(exc))
    except KeyboardInterrupt:
        return _fail("interrupted")
    except Exception as exc:  # a bug, not bad input: one line unless asked for the traceback
        if os.environ.get("RAG_DEBUG"):
            raise
        return _fail(f"unexpected {type(exc).__name__}: {str(exc).splitlines()[0] if str(exc) else ''} "
                     "(set RAG_DEBUG=1 for the traceback)")


def _fail(message: str) -> int:
    print(f"error: {message}", file=sys.stderr)
    return 1


@contextlib.contextmanager
def _pipeline(settings: Settings, embeds: bool = True) -> Iterator:
    """The pipeline for one command; its store is closed after it, which frees the store folder's lock.

    `embeds=False`: a command that only reads or removes records, which then does not load the bi-encoder."""
    from .pipeline import build_pipeline

    pipeline = build_pipeline(settings, defer_embedder=not embeds)
    try:
        yield pipeline
    finally:
        pipeline.store.close()


def cmd_ingest(args, settings: Settings) -> int:
    from .documents.library import expand_paths

    files = expand_paths(args.paths)  # a missing path fails before anything loads
    if not files:
        raise RagError(f"no files to ingest in {', '.join(map(str, args.paths))}")

    def report(outcome):
        if not args.json:
            detail = outcome.reason if outcome.status == "rejected" else f"{outcome.chunks} chunks"
            print(f"{outcome.status:<9} {outcome.name}: {detail}", flush=True)

    with _pipeline(settings) as pipeline:
        repaired = pipeline.library.repair()
        if repaired:
            print(f"removed {repaired} chunks left by an interrupted ingest", file=sys.stderr)
        outcomes = pipeline.library.ingest_paths(files, on_file=report)
    if args.json:
        print(json.dumps([o.to_dict() for o in outcomes], indent=2))
    rejected = [o for o in outcomes if o.status == "rejected"]
    if rejected:
        print(f"error: {len(rejected)} of {len(outcomes)} files rejected; the others were ingested", file=sys.stderr)
        return 1
    return 0


def cmd_docs(args, settings: Settings) -> int:
    with _pipeline(settings, embeds=False) as pipeline:
        records = pipeline.library.documents()
    if args.json:
        print(json.dumps([r.__dict__ for r in records], indent=2))
        return 0
    if not records:
        print("no documents yet: add some with `python -m rag ingest PATH`")
    for r in records:
        pages = f"{r.pages} pages" if r.pages else r.kind
        print(f"{r.name}\t{r.chunks} chunks\t{pages}\t{r.size_bytes} bytes\t{r.added_at}")
    return 0


def cmd_delete(args, settings: Settings) -> int:
    with _pipeline(settings, embeds=False) as pipeline:
        removed = pipeline.library.delete(args.name)
    print(f"deleted {args.name}: {removed} chunks")
    return 0


def cmd_repair(args, settings: Settings) -> int:
    with _pipeline(settings, embeds=False) as pipeline:
        removed = pipeline.library.repair()
    print(f"removed {removed} stray chunks")
    return 0


def cmd_rebuild(args, settings: Settings) -> int:
    from .retrieval.embeddings import load_bi_encoder
    from .retrieval.store import rebuild

    embedder = load_bi_encoder(settings)
    count = rebuild(settings, embedder, on_batch=lambda done, total: print(f"  {done}/{total} chunks", flush=True))
    print(f"rebuilt collection '{settings.collection}' with {settings.embedding_model}: {count} chunks")
    return 0


def _ranking_options(args) -> dict:
    """--no-rerank: off; --rerank: on or fail; neither: the setting, without reranking if the cross-encoder
    cannot load."""
    rerank = False if args.no_rerank else (True if args.rerank else None)
    return dict(rerank=rerank, fallback=not args.rerank, candidates=args.candidates, keep=args.keep,
                hybrid=args.hybrid)


def _say_notice(ranking) -> None:
    if ranking.rerank_notice:
        print(f"notice: {ranking.rerank_notice}", file=sys.stderr)


def cmd_retrieve(args, settings: Settings) -> int:
    with _pipeline(settings) as pipeline:
        ranking = pipeline.retrieve(args.question, **_ranking_options(args))
    _say_notice(ranking)
    if args.json:
        print(json.dumps(ranking.to_dict(), indent=2))
        return 0
    t = ranking.timings
    first = f"bi-encoder {ranking.embedder}" + (" + BM25 (fused ranks)" if ranking.hybrid else "")
    print(f"{first}: {len(ranking.candidates)} candidates in {t.retrieve_ms} ms")
    if ranking.reranked:
        print(f"cross-encoder {ranking.reranker}: reranked in {t.rerank_ms} ms")
    print(f"{'kept':>4} {'bi#':>4} {'bi score':>8} {'ce#':>4} {'ce score':>8} {'move':>5}  source")
    for s in ranking.reranked_order:
        move = "" if s.rank_move is None else f"{s.rank_move:+d}"
        ce_rank = "" if s.ce_rank is None else s.ce_rank
        ce_score = "" if s.ce_score is None else f"{s.ce_score:.4f}"
        kept = f"[{s.number}]" if s.number else ""
        print(f"{kept:>4} {s.bi_rank:>4} {s.bi_score:>8.4f} {ce_rank:>4} {ce_score:>8} {move:>5}  {s.location}: "
              f"{snippet(s.text)}")
    return 0


def cmd_ask(args, settings: Settings) -> int:
    with _pipeline(settings) as pipeline:
        return _ask(pipeline, args)


def _ask(pipeline, args) -> int:
    answer = pipeline.ask(args.question, **_ranking_options(args))
    _say_notice(answer.ranking)
    try:
        if args.json:
            answer.consume()
        else:
            for piece in answer.tokens:
                print(piece, end="", flush=True)
            print()
    except RagError:
        if not args.json:
            print()
        _print_sources(answer, args.json)
        raise
    _print_sources(answer, args.json)
    return 0


def _print_sources(answer, as_json: bool) -> None:
    if as_json:
        print(json.dumps(answer.to_dict(), indent=2))
        return
    if answer.rewritten:
        print(f"(searched for: {answer.standalone_question})")
    if answer.outcome == "declined":
        print("(the model says the passages do not answer this)")
    elif answer.outcome == "unsupported":
        print("(no sentence of the answer is supported by the passages: it does not come from your documents)")
    for sentence in answer.sentences:
        marks = [f"[{n}]" for n in sentence.cited] + [f"[{n}]*" for n in sentence.attributed
                                                       if n not in sentence.cited]
        print(f"  {snippet(sentence.text, 70)!r}: {' '.join(marks) if sentence.supported else 'NOT SUPPORTED'}")
    if answer.sentences:
        print("  ([n] cited by the model, [n]* attributed after the answer by the supporting chunk)")
    print(f"\n{sources_heading(answer.outcome)}:")
    for s in answer.sources:
        ce = f", cross-encoder {s.ce_score:.4f} (#{s.ce_rank})" if s.ce_score is not None else ""
        print(f"  [{s.number}] {s.location} - bi-encoder {s.bi_score:.4f} (#{s.bi_rank}){ce}: {snippet(s.text)}")
        evidence = answer.evidence.get(s.number)
        if evidence:
            print(f"      evidence ({evidence[0].score:.3f}): {snippet(evidence[0].text, 110)}")


def cmd_eval(args, settings: Settings) -> int:
    from .evaluation.retrieval_eval import evaluate, load_beir, load_qa
    from .pipeline import build_pipeline

    if (args.qa or args.answers) and not args.docs:
        raise RagError(f"--{'qa' if args.qa else 'answers'} needs --docs DIR, the documents the questions are about")
    if args.answers:
        return _eval_answers(args, settings)
    args.modes = args.modes or "dense,rerank,hybrid,hybrid-rerank"
    test = load_beir(args.beir) if args.beir else load_qa(args.qa, args.docs)
    if args.limit:
        test.questions = dict(list(test.questions.items())[: args.limit])
    report = evaluate(test, settings, build_pipeline, modes=[m.strip() for m in args.modes.split(",") if m.strip()],
                      level=args.level, candidates=args.candidates, progress=_progress_bar, index_dir=args.index)
    print(f"{report.test_set}: {report.documents} documents, {report.chunks} chunks, {report.questions} questions; "
          f"{report.level} level, {report.candidates} candidates; indexed in {report.index_seconds} s, "
          f"ranked in {report.rank_seconds} s")
    print(f"bi-encoder {report.embedder}; cross-encoder {report.reranker or 'none'}; precision {report.precision}")
    return _print_report(report, args.json)


def _eval_answers(args, settings: Settings) -> int:
    from .evaluation.answer_eval import evaluate_answers, load_answer_set
    from .pipeline import build_pipeline

    test = load_answer_set(args.answers, args.docs, args.unanswerable)
    if args.limit or args.offset:
        test.limit(args.limit, args.offset)
    modes = [m.strip() for m in (args.modes or "dense,rerank").split(",") if m.strip()]
    report = evaluate_answers(test, settings, build_pipeline, modes=modes, progress=_progress_bar,
                              index_dir=args.index, gate_only=args.gate_only)
    counts = ", ".join([f"{len(test.answerable)} answerable"] + [f"{len(v)} {k}" for k, v in test.unanswerable.items()])
    print(f"{report.test_set}: {report.documents} documents, {report.chunks} chunks; {counts} questions per mode; "
          f"{report.seconds} s")
    print(f"LLM {report.llm}; cross-encoder {report.reranker or 'none'}; context sent: {report.context}")
    return _print_report(report, args.json)


def _print_report(report, json_path: Path | None) -> int:
    """The report's table on stdout and, when asked, the whole report as JSON."""
    print(report.table())
    if json_path:
        json_path.write_text(json.dumps(report.to_dict(), indent=1))
    return 0


def _progress_bar(total: int, label: str):
    from tqdm import tqdm

    if sys.stderr.isatty():
        bar = tqdm(total=total, desc=label, unit="", file=sys.stderr, leave=False)
        return lambda: bar.update(1)
    done = [0]

    def step() -> None:  # without a terminal, a line every tenth
        done[0] += 1
        if done[0] == total or done[0] % max(1, total // 10) == 0:
            print(f"{label}: {done[0]}/{total}", file=sys.stderr, flush=True)
    return step


def cmd_settings(args, settings: Settings) -> int:
    if args.markdown:
        print("| variable | default | description |\n|---|---|---|")
    for name, field in Settings.model_fields.items():
        if args.markdown:
            default = "" if field.default is None else f"`{field.default}`"
            print(f"| `RAG_{name.upper()}` | {default} | {field.description} |")
        else:
            print(f"RAG_{name.upper()}={getattr(settings, name)}  # {field.description}")
    return 0


COMMANDS = {"ingest": cmd_ingest, "docs": cmd_docs, "delete": cmd_delete, "retrieve": cmd_retrieve,
            "ask": cmd_ask, "repair": cmd_repair,
            "settings": cmd_settings, "eval": cmd_eval,
            "rebuild": cmd_rebuild, "conversations": cmd_conversations}
