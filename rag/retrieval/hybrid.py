"""Keyword search beside the bi-encoder: BM25 over the store's committed chunks, fused with the dense ranking by
reciprocal-rank fusion (RRF), as LangChain's docs now show it done by hand.

The BM25 index is the store's (`Store.keywords`, `rag.retrieval.keyword_index`): a local SQLite file that each write of
the library updates in the same step as the document registry (`Store.committed`). The registry in Chroma stays the
truth; this module keeps the index in step with it:

- every committed write also adds a record to the store's change log (a Chroma collection), so an index can tell
  cheaply (one count) whether anyone, this process or another app on the same Chroma server, has written since the
  index last matched the registry; if so, and once per process in any case (an existing store opened for the first
  time with this version builds its index then), it is reconciled against the registry: documents gone are dropped,
  documents new or replaced are read from Chroma;
- every keyword hit is checked against the registry before it is returned, so a deleted or replaced document, or
  the chunks of a write cut off before its commit point, are never keyword hits, even while an index is behind.
"""

from __future__ import annotations

from collections.abc import Sequence

from langchain_core.documents import Document

from .keyword_index import tokenize

__all__ = ["KeywordIndex", "fuse", "catch_up", "tokenize", "RRF_K"]

RRF_K = 60  # the constant of Cormack et al. (2009); it damps the weight of the very top ranks
BULK_READ = 50  # more documents than this to catch up: read the whole collection once instead of per document


class KeywordIndex:
    """BM25 search over a store's committed chunks (the index itself lives with the store: `store.keywords`)."""

    def search(self, store, query: str, k: int) -> list[Document]:
        catch_up(store)
        hits, stale = committed_hits(store, store.keywords.search(query, k))
        if stale:  # the index held something the registry no longer vouches for: reconcile, then search again
            store.keywords.set_synced(None)
            catch_up(store)
            hits, _ = committed_hits(store, store.keywords.search(query, k))
        return hits


def committed_hits(store, hits: list[Document]) -> tuple[list[Document], bool]:
    """The hits whose document version the registry holds, and whether any was dropped."""
    names = sorted({str(d.metadata.get("source")) for d in hits})
    committed = {(r.name, r.sha256) for r in store.get_records(names)}
    kept = [d for d in hits if (d.metadata.get("source"), d.metadata.get("doc_sha")) in committed]
    return kept, len(kept) < len(hits)


def catch_up(store) -> int:
    """Bring the store's keyword index in line with its registry if anyone has written since it last matched;
    return how many documents it had to add, replace or drop."""
    index = store.keywords
    with index.sync_lock:
        mark = store.change_mark()  # read before the registry, so that a write during the listing shows next time
        # Once per process the index is compared with the registry whatever its mark says: a write cut off between
        # its commit point and the index update left no change record.
        if index.checked and index.synced() == mark:
            return 0
        records = {r.name: r.sha256 for r in store.list_records()}
        have = index.documents()
        gone = [name for name in have if name not in records]
        missing = {name: sha for name, sha in records.items() if have.get(name) != sha}
        if len(missing) > BULK_READ:
            wanted: dict[tuple[str, str], list[Document]] = {pair: [] for pair in missing.items()}
            for chunk in store.get_chunks():
                pair = (chunk.metadata.get("source"), chunk.metadata.get("doc_sha"))
                if pair in wanted:
                    wanted[pair].append(chunk)
            found = [(name, sha, chunks) for (name, sha), chunks in wanted.items()]
        else:
            found = [(name, sha, store.get_chunks({"$and": [{"source": name}, {"doc_sha": sha}]}))
                     for name, sha in missing.items()]
        if gone:
            index.remove(gone)
        index.put(found, synced=mark)
        index.checked = True
        return len(gone) + len(found)


def fuse(rankings: Sequence[Sequence[Document]], k: int) -> list[tuple[Document, float]]:
    """Reciprocal-rank fusion of several rankings (by document id); the best k with their fused scores."""
    scores: dict[str, float] = {}
    first_seen: dict[str, Document] = {}
    for ranking in rankings:
        for rank, doc in enumerate(ranking, start=1):
            scores[doc.id] = scores.get(doc.id, 0.0) + 1.0 / (RRF_K + rank)
            first_seen.setdefault(doc.id, doc)
    best = sorted(scores, key=lambda i: -scores[i])[:k]
    return [(first_seen[i], scores[i]) for i in best]
