"""The API key table (store/keys.py) through SqlStore, on SQLite and PostgreSQL."""

from __future__ import annotations

import hmac

import pytest

from agentwatch.server.auth import KeyCache, hash_secret, key_id_of, new_key
from agentwatch.store import open_store
from agentwatch.store.keys import KeyExists


def test_keys_round_trip(db_url: str) -> None:
    store = open_store(db_url, maintenance=False)
    try:
        assert store.list_keys() == []
        a, secret_a = new_key("first", "ingest", now=1_000)
        b, _ = new_key("second", "admin", now=2_000)
        store.add_key(a)
        store.add_key(b)
        with pytest.raises(KeyExists):
            store.add_key(new_key("first", "read")[0])  # names are unique
        got = store.list_keys()
        assert [(k.name, k.scope, k.created_at, k.last_used_at) for k in got] == [
            ("first", "ingest", 1_000, None),
            ("second", "admin", 2_000, None),
        ]
        assert got[0].key_id == key_id_of(secret_a)
        assert hmac.compare_digest(got[0].secret_hash, hash_secret(secret_a))
        assert secret_a not in repr(got)

        # Last use only moves forward (two servers may report out of order).
        store.touch_keys({a.key_id: 5_000})
        store.touch_keys({a.key_id: 4_000, "unknown-id": 9})
        assert store.list_keys()[0].last_used_at == 5_000

        assert store.revoke_key("first") is True
        assert store.revoke_key("first") is False
        assert [k.name for k in store.list_keys()] == ["second"]
        store.add_key(new_key("first", "read")[0])  # a revoked name can be used again
    finally:
        store.close()


def test_cache_checks_secrets_and_notes_use(db_url: str) -> None:
    store = open_store(db_url, maintenance=False)
    try:
        rec, secret = new_key("svc", "read")
        store.add_key(rec)
        cache = KeyCache(store)
        assert cache.refresh() and cache.any and len(cache) == 1
        assert cache.check(secret) == rec
        # Same id, wrong secret; wrong shape; another prefix: all refused.
        assert cache.check(secret[:-1] + ("A" if secret[-1] != "A" else "B")) is None
        assert cache.check(secret[:-1]) is None
        assert cache.check("x" + secret[1:]) is None
        cache.refresh()  # writes the last use, then reloads
        [k] = store.list_keys()
        assert k.last_used_at is not None
        store.revoke_key("svc")
        cache.refresh()
        assert cache.check(secret) is None and not cache.any
    finally:
        store.close()
