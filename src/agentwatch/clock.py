"""Time in the store's unit, epoch microseconds: the constants and the clock,
defined once for the store and the server."""

from __future__ import annotations

import time

MINUTE_US = 60_000_000
HOUR_US = 3_600_000_000
DAY_US = 86_400_000_000


def now_us() -> int:
    """The current time in epoch microseconds (integer arithmetic, no float)."""
    return time.time_ns() // 1000
