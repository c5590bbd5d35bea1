"""API key storage: one small table, reached only through these functions.

A key is stored as its public id, a name, a scope and the SHA-256 of its
secret, never the secret itself (server/auth.py makes and checks secrets).
Every function takes the store's engine and runs one short transaction, so
the `agentwatch keys` commands work on the database a server is using.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from dataclasses import dataclass

from sqlalchemy import (
    BigInteger,
    Column,
    Connection,
    Engine,
    String,
    Table,
    UniqueConstraint,
    delete,
    insert,
    or_,
    select,
    update,
)
from sqlalchemy.exc import IntegrityError

from agentwatch.store.tables import metadata

api_keys = Table(
    "api_keys",
    metadata,
    # The public part of the secret (server/auth.py): what a request names to
    # find its key in the server's cache, and what `keys list` shows.
    Column("key_id", String(32), primary_key=True),
    Column("name", String(64), nullable=False),
    Column("scope", String(16), nullable=False),
    # Hex SHA-256 of the whole secret.
    Column("secret_hash", String(64), nullable=False),
    Column("created_at", BigInteger, nullable=False),  # epoch seconds
    Column("last_used_at", BigInteger),  # epoch seconds, about a minute's precision
    UniqueConstraint("name", name="ux_api_keys_name"),
)


@dataclass(frozen=True, slots=True)
class ApiKey:
    key_id: str
    name: str
    scope: str
    secret_hash: str
    created_at: int
    last_used_at: int | None


class KeyExists(ValueError):
    """A key with that name already exists."""


def create_table(conn: Connection) -> None:
    """Migration 10."""
    metadata.create_all(conn, tables=[api_keys])


@contextlib.contextmanager
def _write(engine: Engine) -> Iterator[Connection]:
    # SQLite: BEGIN IMMEDIATE (the engine's begin hook), so the write waits
    # its turn behind the ingest writer instead of failing as "locked".
    # PostgreSQL: row locks suffice; the events writer lock is not needed for
    # a table the ingest path never touches.
    with engine.connect().execution_options(aw_writer=True) as conn, conn.begin():
        yield conn


def add(engine: Engine, key: ApiKey) -> None:
    try:
        with _write(engine) as conn:
            conn.execute(
                insert(api_keys).values(
                    key_id=key.key_id,
                    name=key.name,
                    scope=key.scope,
                    secret_hash=key.secret_hash,
                    created_at=key.created_at,
                    last_used_at=key.last_used_at,
                )
            )
    except IntegrityError:
        raise KeyExists(key.name) from None


def all_keys(engine: Engine) -> list[ApiKey]:
    with engine.connect() as conn:
        rows = conn.execute(select(api_keys).order_by(api_keys.c.created_at, api_keys.c.name))
        return [ApiKey(**r._mapping) for r in rows]


def remove(engine: Engine, name: str) -> bool:
    """Delete the key called `name`; False if there is none."""
    with _write(engine) as conn:
        return bool(conn.execute(delete(api_keys).where(api_keys.c.name == name)).rowcount)


def touch(engine: Engine, used: dict[str, int]) -> None:
    """Record last-used times (key_id -> epoch seconds); never moves one back."""
    if not used:
        return
    c = api_keys.c
    with _write(engine) as conn:
        for key_id, ts in used.items():
            conn.execute(
                update(api_keys)
                .where(c.key_id == key_id, or_(c.last_used_at.is_(None), c.last_used_at < ts))
                .values(last_used_at=ts)
            )
