"""Ranking metrics, as BEIR and MTEB compute them (pytrec_eval's definitions, linear gain).

`ranked` is a list of ids, best first; `relevant` maps an id to its graded relevance (> 0 is relevant).
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence


def dcg(gains: Sequence[float]) -> float:
    return sum(g / math.log2(i + 2) for i, g in enumerate(gains))


def ndcg_at_k(ranked: Sequence[str], relevant: Mapping[str, float], k: int) -> float:
    ideal = dcg(sorted((g for g in relevant.values() if g > 0), reverse=True)[:k])
    if ideal == 0:
        return 0.0
    return dcg([max(relevant.get(i, 0.0), 0.0) for i in ranked[:k]]) / ideal


def recall_at_k(ranked: Sequence[str], relevant: Mapping[str, float], k: int) -> float:
    wanted = {i for i, g in relevant.items() if g > 0}
    if not wanted:
        return 0.0
    return len(wanted.intersection(ranked[:k])) / len(wanted)


def mrr_at_k(ranked: Sequence[str], relevant: Mapping[str, float], k: int) -> float:
    for rank, i in enumerate(ranked[:k], start=1):
        if relevant.get(i, 0.0) > 0:
            return 1.0 / rank
    return 0.0


def dedupe(ids: Sequence[str]) -> list[str]:
    """Keep the first (best) occurrence of each id: chunk rankings mapped to documents."""
    seen: set[str] = set()
    return [i for i in ids if not (i in seen or seen.add(i))]


def percentile(values: Sequence[float], q: float) -> float:
    """The q-th percentile (0..100), linear interpolation between closest ranks."""
    if not values:
        return float("nan")
    ordered = sorted(values)
    pos = (len(ordered) - 1) * q / 100
    low, high = math.floor(pos), math.ceil(pos)
    return ordered[low] + (ordered[high] - ordered[low]) * (pos - low)
