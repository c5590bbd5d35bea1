"""Log-scale latency bins: percentiles with a bounded relative error.

Each stored event carries the index of the bin its latency falls in. A
percentile is then a GROUP BY over small integers instead of a sort of every
latency: the query walks the bin counts to the bin holding the wanted rank and
answers with that bin's representative value, which is within RELATIVE_ERROR
of the true value at that rank (nearest-rank definition). The same bins merge
by addition, so pre-aggregated histograms can use them unchanged. The
histograms the rollups store are encoded here too (the codec at the end).
"""

from __future__ import annotations

import math
import struct
from collections.abc import Iterable, Sequence
from typing import Any

import numpy as np

RELATIVE_ERROR = 0.005  # 0.5 %: half of the 1 % the API promises
GAMMA = (1 + RELATIVE_ERROR) / (1 - RELATIVE_ERROR)
_LOG_GAMMA = math.log(GAMMA)
# Latencies at or below this (ms) share bin 0 and are reported as 0; anything
# faster than 10 microseconds is not a network call worth distinguishing.
MIN_MS = 0.01


def latency_bin(ms: float) -> int:
    if ms <= MIN_MS:
        return 0
    return max(1, math.ceil(math.log(ms / MIN_MS) / _LOG_GAMMA))


def bin_value(b: int) -> float:
    """Representative latency of bin `b`: its bounds are (MIN*g^(b-1), MIN*g^b]."""
    if b <= 0:
        return 0.0
    return MIN_MS * 2 * GAMMA**b / (GAMMA + 1)


def percentiles(counts: Iterable[tuple[int, int]], qs: Iterable[float]) -> list[float | None]:
    """Nearest-rank percentiles from (bin, count) pairs; None for no data.

    The q-th percentile is the value at rank ceil(q * n) (1-based) of the sorted
    latencies, which is the textbook nearest-rank definition.
    """
    pairs = sorted((b, c) for b, c in counts if c)
    n = sum(c for _, c in pairs)
    if n == 0:
        return [None for _ in qs]
    out: list[float | None] = []
    for q in qs:
        rank = max(1, math.ceil(q * n))
        seen = 0
        for b, c in pairs:
            seen += c
            if seen >= rank:
                out.append(round(bin_value(b), 3))
                break
    return out


def percentiles_by_group(
    gid: Any, bins: Any, counts: Any, ngroups: int, qs: tuple[float, ...]
) -> list[list[float | None]]:
    """Nearest-rank percentiles of many histograms in one numpy pass.

    Record k adds counts[k] to bin bins[k] of group gid[k]. The records become
    one (group x bin) count matrix, cumulated along the bins; each percentile
    is then the first bin whose running count reaches its rank. A timeseries
    has one group per bucket: doing them together turns ~180 small numpy
    passes into one, which is most of the Python time of a long chart.
    """

    if ngroups == 0:
        return []
    if len(bins) == 0:
        return [[None for _ in qs] for _ in range(ngroups)]
    b = np.asarray(bins, dtype=np.int64)
    lo = int(b.min())  # only the occupied span of bins: a few hundred, not ~2,800
    nb = int(b.max()) - lo + 1
    flat = np.asarray(gid, dtype=np.int64) * nb + (b - lo)
    if ngroups * nb > _DENSE_MAX:
        return _sparse_percentiles(flat, counts, nb, lo, ngroups, qs)
    hist = np.bincount(flat, weights=counts, minlength=ngroups * nb)
    cum = np.cumsum(hist.reshape(ngroups, nb), axis=1)
    total = cum[:, -1]
    cols = []
    for q in qs:
        rank = np.maximum(1, np.ceil(q * total - 1e-9))
        idx = (cum < rank[:, None] - 0.5).sum(axis=1) + lo  # first bin reaching the rank
        vals = np.where(idx > 0, MIN_MS * 2 * GAMMA ** idx.astype(float) / (GAMMA + 1), 0.0)
        cols.append(vals)
    return [
        [round(float(col[i]), 3) if total[i] > 0 else None for col in cols] for i in range(ngroups)
    ]


# Past this many (group x bin) cells the count matrix would cost more memory
# than it saves time (50,000 task names x 400 bins: 160 MB): the records are
# then summed per (group, bin) and searched in sorted order instead.
_DENSE_MAX = 2_000_000


def _sparse_percentiles(
    flat: Any, counts: Any, nb: int, lo: int, ngroups: int, qs: tuple[float, ...]
) -> list[list[float | None]]:
    import numpy as np

    keys, inv = np.unique(flat, return_inverse=True)
    c = np.bincount(inv.reshape(-1), weights=counts)  # per (group, bin), in (group, bin) order
    g = keys // nb
    binv = keys % nb + lo
    cum = np.cumsum(c)
    total = np.bincount(g, weights=c, minlength=ngroups)
    start = np.searchsorted(g, np.arange(ngroups))  # first record of each group
    before = np.where(start > 0, cum[np.maximum(start - 1, 0)], 0.0)
    cols = []
    for q in qs:
        rank = np.maximum(1, np.ceil(q * total - 1e-9))
        # The first record of the group whose running count reaches the rank.
        at = np.searchsorted(cum, before + rank - 0.5)
        at = np.minimum(at, len(cum) - 1)
        idx = binv[at]
        vals = np.where(idx > 0, MIN_MS * 2 * GAMMA ** idx.astype(float) / (GAMMA + 1), 0.0)
        cols.append(vals)
    return [
        [round(float(col[i]), 3) if total[i] > 0 else None for col in cols] for i in range(ngroups)
    ]


# -- histogram codec ----------------------------------------------------------
# A histogram is stored as packed little-endian records of (uint16 bin,
# uint32 count), bins ascending: 6 bytes per occupied bin. Records (rather
# than all bins then all counts) let a query decode thousands of rows with one
# numpy call on their concatenation.
_PAIR = struct.Struct("<HI")
REC = np.dtype([("b", "<u2"), ("c", "<u4")])


def encode_hist(h: dict[int, int]) -> bytes:
    flat: list[int] = []
    for b in sorted(h):
        flat.append(b)
        flat.append(h[b])
    return struct.pack("<" + "HI" * len(h), *flat)


def decode_hist(blob: bytes | None) -> dict[int, int]:
    if not blob:
        return {}
    return dict(_PAIR.iter_unpack(blob))


def decode_many(blobs: Sequence[bytes]) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Decode many rows' histograms with one numpy call on their concatenation:
    (records per row, bins, counts), the records in row order."""
    lens = np.fromiter((len(x) // 6 for x in blobs), dtype=np.int64, count=len(blobs))
    rec = np.frombuffer(b"".join(blobs), dtype=REC)
    return lens, rec["b"].astype(np.int64), rec["c"].astype(np.int64)
