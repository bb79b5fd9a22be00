"""The README's plots, drawn from the JSON files the benchmarks wrote (nothing is measured here).

Run: `scripts/run-bench.sh plots [--results bench/results] [--out docs/bench]`; it draws each plot whose input exists:
  scifact.json (python -m rag eval ... --json)  -> retrieval.png (with scifact-whole-abstracts.json if present)
  speed.json   (bench/speed.py --json)          -> speed.png
  scale.json   (bench/scale.py --json)          -> scale.png
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402

REPO = Path(__file__).resolve().parents[1]
GREY, BLUE, ORANGE = "#9e9e9e", "#1565c0", "#ef6c00"
# Published SciFact nDCG@10 figures the README compares with (MTEB for the bi-encoder, the BEIR paper for the rest).
PUBLISHED = {"all-MiniLM-L6-v2 (MTEB)": 0.645, "BM25 + ms-marco CE (BEIR)": 0.688}


def retrieval(report: dict, out: Path, whole: dict | None = None) -> None:
    """nDCG@10 per mode; with `whole`, the dense run on whole abstracts (one chunk each, as MTEB embeds them) first."""
    modes = [r["mode"] for r in report["results"]]
    values = [r["metrics"]["ndcg@10"] for r in report["results"]]
    colours = [GREY if "rerank" not in m else BLUE for m in modes]
    if whole:
        modes, values = ["dense,\nwhole abstracts", *modes], [whole["results"][0]["metrics"]["ndcg@10"], *values]
        colours = ["#d0d0d0", *colours]
    fig, ax = plt.subplots(figsize=(7.5, 3.8))
    bars = ax.bar(modes, values, color=colours)
    ax.bar_label(bars, fmt="%.3f")
    for (label, value), style in zip(PUBLISHED.items(), ("--", ":")):
        ax.axhline(value, color=ORANGE, linestyle=style, linewidth=1, label=f"published: {label} {value}")
    ax.legend(fontsize=8, loc="upper left")
    ax.set_ylim(0.5, 0.78)
    ax.set_ylabel("nDCG@10")
    ax.set_title(f"SciFact, {report['questions']} claims, {report['chunks']:,} chunks of 1,000 characters; blue = "
                 "reranked by the test cross-encoder\n(trained on SciFact's training claims and on its corpus: in-domain, "
                 "not comparable with ms-marco)", fontsize=9)
    save(fig, out / "retrieval.png")


def speed(report: dict, out: Path) -> None:
    fig, (left, right) = plt.subplots(1, 2, figsize=(10, 3.8), gridspec_kw={"width_ratios": [2, 1]})
    ns = list(report["query"])
    colours = {"textbook-float32": GREY, "textbook-bfloat16": "#b0b0b0", "ours-float32": ORANGE, "ours": BLUE,
               "ours per-file": "#9ecae1"}
    series = [name for name in colours if f"{name} retrieve+rerank" in report["query"][ns[0]]]
    width = 0.8 / len(series)
    for i, name in enumerate(series):
        xs = [j + i * width for j in range(len(ns))]
        bars = left.bar(xs, [report["query"][n][f"{name} retrieve+rerank"]["p50"] for n in ns], width, label=name,
                        color=colours[name])
        left.bar_label(bars, fmt="%.0f", fontsize=6)
    left.set_xticks([j + width * (len(series) - 1) / 2 for j in range(len(ns))], [f"N={n}" for n in ns])
    left.set_ylabel("retrieve + rerank to 3, ms p50")
    left.legend(fontsize=7)
    names = [name for name in colours if name in report["ingest"]]
    bars = right.bar(names, [report["ingest"][k]["chunks_per_s"] for k in names], color=[colours[k] for k in names])
    right.bar_label(bars, fmt="%.0f", fontsize=7)
    right.set_ylabel("ingest, chunks/s")
    right.tick_params(axis="x", labelsize=6, rotation=30)
    fig.suptitle(f"{report['docs']:,} SciFact abstracts, {report['questions']} claims; same models, same machine "
                 f"({report.get('cpu', 'CPU not recorded')})", fontsize=8)
    save(fig, out / "speed.png")


def scale(report: dict, out: Path) -> None:
    rows = report["rows"]
    sizes = [r["chunks"] for r in rows]
    fig, (left, right) = plt.subplots(1, 2, figsize=(9, 3.6))
    for key, colour in (("dense retrieve", BLUE), ("hybrid retrieve", ORANGE), ("rerank", GREY)):
        left.plot(sizes, [r[key]["p50"] for r in rows], marker="o", color=colour, label=f"{key} (p50)")
    left.set_xscale("log")
    left.set_yscale("log")
    left.set_xlabel("chunks in the store")
    left.set_ylabel("ms per question")
    left.legend(fontsize=8)
    right.plot(sizes, [r["chunks_per_s"] for r in rows], marker="o", color=BLUE, label="ingest, chunks/s")
    right.set_xscale("log")
    right.set_xlabel("chunks in the store")
    right.set_ylabel("chunks/s of the step that reached it")
    right.set_ylim(bottom=0)
    fig.suptitle(f"Synthetic chunks of {report['chunk_chars']} characters; {report['candidates']} candidates",
                 fontsize=9)
    save(fig, out / "scale.png")


def save(fig, path: Path) -> None:
    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=110)
    plt.close(fig)
    print(f"wrote {path.relative_to(REPO) if path.is_relative_to(REPO) else path}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--results", type=Path, default=REPO / "bench" / "results")
    parser.add_argument("--out", type=Path, default=REPO / "docs" / "bench")
    args = parser.parse_args()
    for name, draw in (("scifact.json", retrieval), ("speed.json", speed), ("scale.json", scale)):
        source = args.results / name
        if not source.is_file():
            print(f"skipped {name}: not found in {args.results}")
        elif draw is retrieval and (whole := args.results / "scifact-whole-abstracts.json").is_file():
            retrieval(json.loads(source.read_text()), args.out, json.loads(whole.read_text()))
        else:
            draw(json.loads(source.read_text()), args.out)


if __name__ == "__main__":
    main()
