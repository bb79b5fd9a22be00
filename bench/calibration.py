"""Writes rag/encoders/data/calibration.jsonl.gz: the real (question, chunk) pairs that int8 encoders are calibrated and
checked on when they are built (rag/encoders/quantize.py).

SciFact claims 181-300 of the test file (in file order; the benchmarks evaluate on claims 1-150, so calibration never
sees an evaluation question), each with its pool: the chunks of the project's splitter nearest to it by the float32
bi-encoder, exact search over the whole corpus.
- `check`: claims 181-190, each with its whole pool of 20 (the build compares int8's top 3 with float32's on these);
- `calibration`: claims 191-300, each with three chunks of its pool (ranks 1, 5 and 15: one close, two less so),
  330 pairs, on which activation ranges are measured.

Run: `PYTHONPATH=$PWD .venv/bin/python bench/calibration.py [--vectors DIR]` (DIR caches the corpus vectors).
Sources: SciFact (claims CC BY 4.0, abstracts ODC-By 1.0), see ../shared/eval/scifact/README.md.
"""

from __future__ import annotations

import argparse
import gzip
import json
import sys
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from bench.common import SCIFACT, split_as_the_app_does  # noqa: E402
from rag.encoders.quantize import CALIBRATION  # noqa: E402
from rag.evaluation.retrieval_eval import load_beir  # noqa: E402
from rag.retrieval.embeddings import BiEncoder  # noqa: E402
from rag.settings import Settings  # noqa: E402

CHECK, CALIBRATE, POOL, PICKS = range(180, 190), range(190, 300), 20, (0, 4, 14)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--vectors", type=Path, help="folder to keep (or read) the corpus vectors in")
    args = parser.parse_args()
    settings = Settings()
    test = load_beir(SCIFACT)
    texts = [c.page_content for c in split_as_the_app_does(test.documents, settings)]
    qids = list(test.questions)
    embedder = BiEncoder(settings.embedding_model, precision="float32")
    cached = args.vectors / "vectors.npy" if args.vectors else None
    if cached and cached.is_file():
        vectors = np.load(cached)
    else:
        vectors = np.asarray(embedder.embed_documents(texts), dtype=np.float32)
        if cached:
            args.vectors.mkdir(parents=True, exist_ok=True)
            np.save(cached, vectors)
    wanted = [*CHECK, *CALIBRATE]
    queries = np.asarray(embedder.embed_documents([test.questions[qids[i]] for i in wanted]), dtype=np.float32)
    pools = np.argsort(-(queries @ vectors.T), axis=1)[:, :POOL]
    CALIBRATION.parent.mkdir(parents=True, exist_ok=True)
    lines = []
    for i, pool in zip(wanted, pools):
        use = "check" if i in CHECK else "calibration"
        picked = pool if use == "check" else pool[list(PICKS)]
        lines.append(json.dumps({"use": use, "source": f"scifact test claim {qids[i]}",
                                 "question": test.questions[qids[i]], "passages": [texts[j] for j in picked]}))
    # mtime 0: the same pairs give the same bytes, so that the int8 copies (keyed by this file's hash) are not rebuilt
    with gzip.GzipFile(CALIBRATION, "wb", compresslevel=9, mtime=0) as out:
        out.write(("\n".join(lines) + "\n").encode("utf-8"))
    print(f"wrote {CALIBRATION} ({CALIBRATION.stat().st_size / 1e3:.0f} kB)")


if __name__ == "__main__":
    main()
