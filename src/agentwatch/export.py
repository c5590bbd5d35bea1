"""Export formats (issue 14): logical event rows -> CSV or JSON Lines bytes.

Shared by `GET /api/export` (server/api/export.py) and `agentwatch export
--db` (cli.py), so both write the same bytes for the same events.

- CSV (RFC 4180): a header row, then one row per event; fields holding a
  comma, a quote or a line break are quoted, quotes doubled, rows end in
  CRLF. The brief's fields come first, then the rest of the event contract.
  `metadata` is the event's metadata as a JSON string; a missing value
  (an error_message of a success, a call without provider) is an empty
  field. Numbers are written exactly (shortest round-trip float text).
- JSONL: one JSON object per line, exactly what `GET /api/events` shows
  for the event.
"""

from __future__ import annotations

import csv
import io
import re
from collections.abc import Iterable, Iterator
from datetime import UTC, datetime
from typing import Any

import orjson

from agentwatch.schema import BRIEF_FIELDS, EVENT_FIELDS
from agentwatch.store.codec import iso_from_us, to_api
from agentwatch.store.tables import INSERT_COLUMNS

FORMATS: dict[str, tuple[str, str]] = {
    # format -> (media type, file extension)
    "csv": ("text/csv; charset=utf-8", "csv"),
    "jsonl": ("application/x-ndjson", "jsonl"),
}

# The brief's event fields in its order, then the rest of the contract.
CSV_COLUMNS: tuple[str, ...] = BRIEF_FIELDS + tuple(
    f for f in EVENT_FIELDS if f not in BRIEF_FIELDS
)

_L = {n: i for i, n in enumerate(INSERT_COLUMNS)}
_CSV_INDEX = tuple(_L["ts" if n == "timestamp" else n] for n in CSV_COLUMNS)
_TS_POS = CSV_COLUMNS.index("timestamp")
_META_POS = CSV_COLUMNS.index("metadata")


class _Buffer(io.StringIO):
    """A StringIO the csv writer fills and each chunk empties."""

    def take(self) -> bytes:
        out = self.getvalue().encode()
        self.seek(0)
        self.truncate()
        return out


def csv_chunks(chunks: Iterable[list[tuple[Any, ...]]]) -> Iterator[bytes]:
    """The header, then the CSV text of each chunk of logical rows."""
    buf = _Buffer()
    w = csv.writer(buf, lineterminator="\r\n", quoting=csv.QUOTE_MINIMAL)
    w.writerow(CSV_COLUMNS)
    yield buf.take()
    idx = _CSV_INDEX
    for rows in chunks:
        out = []
        for r in rows:
            v = [r[i] for i in idx]
            v[_TS_POS] = iso_from_us(v[_TS_POS])
            if v[_META_POS] is None:
                v[_META_POS] = "{}"
            out.append(v)
        w.writerows(out)  # None is written as an empty field
        yield buf.take()


# The stored metadata is JSON text already: embedded as it is (orjson's
# Fragment) instead of parsed and written again, which was half the cost.
_Fragment = getattr(orjson, "Fragment", None)
_API_INDEX = [(n, _L["ts" if n == "timestamp" else n]) for n in EVENT_FIELDS]
_L_META = _L["metadata"]
_L_TS = _L["ts"]


def _api_fast(row: tuple[Any, ...]) -> dict[str, Any]:
    d = {n: row[i] for n, i in _API_INDEX}
    d["timestamp"] = iso_from_us(row[_L_TS])
    meta = row[_L_META]
    d["metadata"] = _Fragment(meta) if meta else {}  # type: ignore[misc]
    return d


def jsonl_chunks(chunks: Iterable[list[tuple[Any, ...]]]) -> Iterator[bytes]:
    """One JSON object per event and line (what GET /api/events shows for
    it), a chunk of rows at a time."""
    dumps = orjson.dumps
    api = to_api if _Fragment is None else _api_fast
    for rows in chunks:
        if rows:
            yield b"\n".join([dumps(api(r)) for r in rows]) + b"\n"


def encode(fmt: str, chunks: Iterable[list[tuple[Any, ...]]]) -> Iterator[bytes]:
    if fmt == "csv":
        return csv_chunks(chunks)
    if fmt == "jsonl":
        return jsonl_chunks(chunks)
    raise ValueError(f"unknown export format {fmt!r}; choose csv or jsonl")


_UNSAFE = re.compile(r"[^A-Za-z0-9-]+")


def file_name(fmt: str, filters: dict[str, Any], now: datetime | None = None) -> str:
    """`agentwatch-events[-<filter>-<value>...]-<UTC time>.<ext>`, ASCII only:
    says what was exported and when, and is safe in any header and file system."""
    parts = ["agentwatch-events"]
    for k, v in filters.items():
        if v is None or v == "":
            continue
        if isinstance(v, datetime):
            utc = (v if v.tzinfo else v.replace(tzinfo=UTC)).astimezone(UTC)
            text = utc.strftime("%Y%m%dT%H%M%SZ")
        else:
            text = str(v)
        safe = _UNSAFE.sub("_", text).strip("_")[:40] or "x"
        parts.append(f"{k.replace('_name', '').replace('_', '')}-{safe}")
    stamp = (now or datetime.now(UTC)).astimezone(UTC).strftime("%Y%m%dT%H%M%SZ")
    parts.append(stamp)
    return "-".join(parts) + "." + FORMATS[fmt][1]


__all__ = ["CSV_COLUMNS", "FORMATS", "csv_chunks", "encode", "file_name", "jsonl_chunks"]
