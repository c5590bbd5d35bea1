"""Latency bins: percentiles within the promised relative error."""

from __future__ import annotations

import math
import random

from agentwatch.store.sketch import RELATIVE_ERROR, bin_value, latency_bin, percentiles


def test_bin_value_within_relative_error() -> None:
    rng = random.Random(3)
    for _ in range(20_000):
        x = math.exp(rng.uniform(math.log(0.02), math.log(1e7)))
        assert abs(bin_value(latency_bin(x)) - x) / x <= RELATIVE_ERROR + 1e-9


def test_percentiles_nearest_rank() -> None:
    rng = random.Random(5)
    xs = [rng.lognormvariate(6, 1) for _ in range(5001)]
    counts: dict[int, int] = {}
    for x in xs:
        counts[latency_bin(x)] = counts.get(latency_bin(x), 0) + 1
    p50, p95, p99 = percentiles(counts.items(), (0.5, 0.95, 0.99))
    s = sorted(xs)
    for got, q in ((p50, 0.5), (p95, 0.95), (p99, 0.99)):
        exact = s[math.ceil(q * len(s)) - 1]
        assert got is not None and abs(got - exact) / exact <= RELATIVE_ERROR + 1e-9


def test_zero_and_empty() -> None:
    assert latency_bin(0.0) == 0 and bin_value(0) == 0.0
    assert percentiles([], (0.5,)) == [None]


def test_grouped_percentiles_match_one_by_one() -> None:
    import numpy as np

    from agentwatch.store.sketch import percentiles_by_group

    rng = random.Random(9)
    groups = []
    for _group in range(40):
        parts = []
        for _ in range(rng.randint(0, 3)):
            n = rng.randint(1, 50)
            bins = np.array([latency_bin(rng.lognormvariate(6, 1)) for _ in range(n)])
            parts.append((bins, np.ones(n, dtype=np.int64) * rng.randint(1, 4)))
        groups.append(parts)
    gid = [np.full(len(b), i) for i, parts in enumerate(groups) for b, _ in parts]
    got = percentiles_by_group(
        np.concatenate(gid),
        np.concatenate([b for parts in groups for b, _ in parts]),
        np.concatenate([c for parts in groups for _, c in parts]),
        len(groups),
        (0.5, 0.95),
    )
    for parts, row in zip(groups, got, strict=True):
        if not parts:
            assert row == [None, None]
            continue
        b = np.concatenate([p[0] for p in parts])
        c = np.concatenate([p[1] for p in parts])
        # One group on its own: the same answer as in the matrix of all 40.
        assert row == percentiles_by_group(np.zeros(len(b)), b, c, 1, (0.5, 0.95))[0]
        assert row == percentiles(zip(b.tolist(), c.tolist(), strict=True), (0.5, 0.95))
