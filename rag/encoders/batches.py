"""Tokenized inputs in batches: grouped by length so that little is padding, and padded to the longest of each.

Both encoders and all their copies batch this way (`rag.retrieval.rerank`, `rag.encoders.quantize.Encoder`).
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np


def pad_batch(encoded, indexes: Sequence[int], pad_id: int) -> dict[str, np.ndarray]:
    """The tokenized pairs at `indexes` as int64 arrays, right-padded to the longest of them (no more)."""
    width = max(len(encoded["input_ids"][i]) for i in indexes)
    out = {}
    for key in encoded.keys():
        fill = pad_id if key == "input_ids" else 0
        array = np.full((len(indexes), width), fill, dtype=np.int64)
        for row, i in enumerate(indexes):
            values = encoded[key][i]
            array[row, : len(values)] = values
        out[key] = array
    return out


def length_buckets(lengths: Sequence[int], max_batch: int = 32, max_padding: float = 0.1) -> list[list[int]]:
    """Indexes grouped, longest first, so that padding to a batch's longest pair wastes at most `max_padding`.

    A batch is padded to its longest sequence; one batch of a short and a long chunk computes the short one at the
    long one's length. Chunks of one size with a short last chunk per document are the common case.
    """
    order = sorted(range(len(lengths)), key=lambda i: -lengths[i])
    batches: list[list[int]] = []
    start = 0
    while start < len(order):
        longest, total, end = lengths[order[start]], lengths[order[start]], start + 1
        while end < len(order) and end - start < max_batch:
            padded = (end - start + 1) * longest
            if padded - (total + lengths[order[end]]) > max_padding * padded:
                break
            total += lengths[order[end]]
            end += 1
        batches.append(order[start:end])
        start = end
    return batches
