"""`agentwatch` command line: the arguments of serve, demo, keys, alerts, prune,
rebuild-rollups, migrate-db, export and reprice (serving itself is server/serve.py)."""

from __future__ import annotations

import argparse
import sys
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from agentwatch._version import __version__
from agentwatch.server.serve import StartError, open_store, shown_db


class CliError(Exception):
    """A one-line message for the user; exit code 1."""


def _add_settings(p: argparse.ArgumentParser, names: tuple[str, ...] | None = None) -> None:
    from agentwatch.server.settings import SETTINGS, env_default

    for s in SETTINGS:
        if names is not None and s.name not in names:
            continue
        default = env_default(s)
        shown = "" if s.default is None else f" (default: {s.default})"
        p.add_argument(
            s.flag,
            dest=s.name,
            type=s.type,
            default=default,
            metavar=s.name.upper(),
            help=f"{s.help}{shown}; env {s.env}",
        )


def cmd_serve(args: argparse.Namespace) -> int:
    from agentwatch.server.serve import serve
    from agentwatch.server.settings import SETTINGS, Settings

    serve(Settings(**{s.name: getattr(args, s.name) for s in SETTINGS}))
    return 0


def cmd_prune(args: argparse.Namespace) -> int:
    try:
        dt = datetime.fromisoformat(args.before)
    except ValueError:
        raise CliError(f"--before {args.before!r} is not an ISO date or datetime") from None
    if dt.tzinfo is None:
        dt = dt.replace(tzinfo=UTC)
    store = open_store(args.db)
    try:
        n = store.delete_events_before(int(dt.timestamp() * 1_000_000))
    finally:
        store.close()
    print(f"deleted {n} events before {dt.isoformat()}")
    return 0


def cmd_rebuild(args: argparse.Namespace) -> int:
    store = open_store(args.db)
    try:
        n = store.rebuild_rollups()
    finally:
        store.close()
    print(f"rebuilt rollups from {n} events")
    return 0


def cmd_migrate_db(args: argparse.Namespace) -> int:
    """Copy every event of one store into another, oldest insertion first.

    Rows go through the destination's normal ingest path (insert-or-skip on
    id, rollups updated in the same transaction for the rows that were new),
    so rerunning copies nothing twice and the pre-aggregates stay consistent.
    """
    from agentwatch.store.dialect import is_url

    src_db, dst_db = args.src, args.dst
    if not is_url(src_db) and not Path(src_db).expanduser().is_file():
        raise CliError(f"--from {src_db}: no such SQLite file")
    if shown_db(src_db) == shown_db(dst_db):
        raise CliError("--from and --to are the same database")
    src = open_store(src_db, migrate=not is_url(src_db))
    try:
        dst = open_store(dst_db)
        try:
            total = new = 0
            for rows in src.iter_rows(args.chunk):
                res = _store_call(dst_db, dst.insert_events, rows)
                total += len(rows)
                new += res.inserted
                if not args.quiet:
                    print(f"\r{total} events read, {new} copied", end="", flush=True)
        finally:
            dst.close()
    finally:
        src.close()
    if not args.quiet:
        print()
    print(
        f"copied {new} events from {shown_db(src_db)} to {shown_db(dst_db)} "
        f"({total - new} already there)"
    )
    return 0


def _store_call(db: str, fn: Any, *a: Any) -> Any:
    from sqlalchemy.exc import SQLAlchemyError

    from agentwatch.store.base import error_line

    try:
        return fn(*a)
    except SQLAlchemyError as e:
        raise CliError(f"database {shown_db(db)}: {error_line(e)}") from None


def _keys_store(db: str, create: bool) -> Any:
    from agentwatch.store.dialect import is_url

    if not create and not is_url(db) and not Path(db).expanduser().is_file():
        raise CliError(f"--db {db}: no such SQLite file")
    return open_store(db, maintenance=False)


def cmd_keys_create(args: argparse.Namespace) -> int:
    from agentwatch.server.auth import new_key
    from agentwatch.store.keys import KeyExists

    try:
        key, secret = new_key(args.name, args.scope)
    except ValueError as e:
        raise CliError(str(e)) from None
    store = _keys_store(args.db, create=True)
    try:
        _store_call(args.db, store.add_key, key)
    except KeyExists:
        raise CliError(
            f"a key named {args.name!r} exists already; revoke it first or choose another name"
        ) from None
    finally:
        store.close()
    # The note goes to stderr, so that `KEY=$(agentwatch keys create ...)` gets
    # the secret alone; stdout's last (and only) line is the secret.
    print(
        f"Created key {key.name!r} (scope {key.scope}) in {shown_db(args.db)}. Servers on "
        "this database accept it within 5 seconds. The secret below is shown only this once "
        "and cannot be recovered; store it now.",
        file=sys.stderr,
        flush=True,
    )
    print(secret, flush=True)
    return 0


def _when(ts: int | None) -> str:
    if ts is None:
        return "never"
    return datetime.fromtimestamp(ts, UTC).strftime("%Y-%m-%d %H:%M UTC")


def cmd_keys_list(args: argparse.Namespace) -> int:
    from agentwatch.server.auth import PREFIX

    store = _keys_store(args.db, create=False)
    try:
        keys = _store_call(args.db, store.list_keys)
    finally:
        store.close()
    if not keys:
        print("no API keys: the server is in protected mode (only its own machine is served)")
        return 0
    rows = [("NAME", "SCOPE", "ID", "CREATED", "LAST USED")]
    rows += [
        (k.name, k.scope, f"{PREFIX}{k.key_id}_…", _when(k.created_at), _when(k.last_used_at))
        for k in keys
    ]
    widths = [max(len(r[i]) for r in rows) for i in range(len(rows[0]))]
    for r in rows:
        print("  ".join(v.ljust(w) for v, w in zip(r, widths, strict=True)).rstrip())
    return 0


def cmd_keys_revoke(args: argparse.Namespace) -> int:
    store = _keys_store(args.db, create=False)
    try:
        gone = _store_call(args.db, store.revoke_key, args.name)
        left = len(_store_call(args.db, store.list_keys)) if gone else None
    finally:
        store.close()
    if not gone:
        raise CliError(f"no key named {args.name!r} (see `agentwatch keys list`)")
    print(f"revoked key {args.name!r}; servers on this database refuse it within 5 seconds")
    if left == 0:
        print("that was the last key: the server is back in protected mode")
    return 0


def _us_when(us: int | None) -> str:
    return "-" if us is None else _when(us // 1_000_000)


def cmd_alerts_list(args: argparse.Namespace) -> int:
    from agentwatch.server.alerting import fmt

    store = _keys_store(args.db, create=False)
    try:
        rules = _store_call(args.db, store.list_alerts)
    finally:
        store.close()
    if not rules:
        print("no alert rules (create one with POST /api/alerts or in the dashboard)")
        return 0
    rows = [("NAME", "STATE", "VALUE", "RULE", "FILTERS", "EVALUATED")]
    for r in rules:
        rows.append(
            (
                r.name,
                r.state or "pending",
                "-" if r.value is None else fmt(r.metric, r.value),
                f"{r.metric} {r.window} {r.operator} {fmt(r.metric, r.threshold)}",
                ",".join(f"{k}={v}" for k, v in sorted(r.filters.items())) or "-",
                _us_when(r.evaluated_at),
            )
        )
    widths = [max(len(r[i]) for r in rows) for i in range(len(rows[0]))]
    for row in rows:
        print("  ".join(v.ljust(w) for v, w in zip(row, widths, strict=True)).rstrip())
    return 0


def cmd_alerts_test(args: argparse.Namespace) -> int:
    """Queue a test notification for the rule and make its first attempt now;
    if that fails, a running server retries it like any other."""
    from agentwatch.server.alerting import deliver_one, now_us, payload
    from agentwatch.server.settings import SETTINGS, env_default

    defaults = {s.name: env_default(s) for s in SETTINGS}
    store = _keys_store(args.db, create=False)
    try:
        r = _store_call(args.db, store.get_alert, None, args.name)
        if r is None:
            raise CliError(f"no alert rule named {args.name!r} (see `agentwatch alerts list`)")
        base = args.public_url or defaults["public_url"] or "http://localhost:8787"
        body = payload(r, "test", r.value, now_us(), base)
        did = _store_call(args.db, store.queue_alert_delivery, r.id, "test", body)
        claimed = _store_call(args.db, store.claim_alert_deliveries, 1, 30_000_000, did)
        if not claimed:
            print(f"queued test notification {did}; a server delivers it")
            return 0
        outcome = deliver_one(
            store, claimed[0], defaults["alert_retry_base"], defaults["alert_retry_for"]
        )
        hist = _store_call(args.db, store.alert_history, r.id, 1)
    finally:
        store.close()
    detail = hist[0]["detail"] if hist else ""
    print(f"test notification to {r.webhook_url}: {outcome} ({detail})")
    if outcome == "delivered":
        return 0
    if outcome == "retry":
        print("a running server retries it (see the rule's history)")
    return 1


# -- export (issue 14) --
EXPORT_FILTERS = ("agent_name", "task_name", "model", "status", "kind")


class _Progress:
    """A progress line on stderr, redrawn at most twice a second, shown once
    the export has run for a second (a short export prints nothing but the
    closing line)."""

    def __init__(self, quiet: bool) -> None:
        import time

        self.quiet = quiet
        self.start = time.monotonic()
        self.last = self.start
        self.shown = False

    def update(self, text: str, final: bool = False) -> None:
        import time

        if self.quiet:
            return
        now = time.monotonic()
        if final or (now - self.start >= 1.0 and now - self.last >= 0.5):
            self.last = now
            self.shown = True
            end = "\n" if final else ""
            print(f"\r{text} ({now - self.start:.1f} s)", end=end, file=sys.stderr, flush=True)


def _export_time(name: str, value: str | None) -> datetime | None:
    if value is None:
        return None
    try:
        dt = datetime.fromisoformat(value)
    except ValueError:
        raise CliError(f"--{name} {value!r} is not an ISO date or datetime") from None
    return dt if dt.tzinfo is not None else dt.replace(tzinfo=UTC)


def cmd_export(args: argparse.Namespace) -> int:
    if (args.server is None) == (args.db is None):
        raise CliError("give either --server URL or --db PATH_OR_URL")
    since = _export_time("since", args.since)
    until = _export_time("until", args.until)
    if since and until and since > until:
        raise CliError("--since must not be later than --until")
    out: Any = sys.stdout.buffer
    if args.output and args.output != "-":
        try:
            out = open(args.output, "wb")  # noqa: SIM115
        except OSError as e:
            raise CliError(f"cannot write {args.output}: {e.strerror or e}") from None
    progress = _Progress(args.quiet)
    try:
        if args.server is not None:
            n_bytes, n_events = _export_http(args, since, until, out, progress)
        else:
            n_bytes, n_events = _export_db(args, since, until, out, progress)
        out.flush()
    finally:
        if out is not sys.stdout.buffer:
            out.close()
    where = f" to {args.output}" if args.output and args.output != "-" else ""
    count = f"{n_events} events, " if n_events is not None else ""
    progress.update(f"exported {count}{n_bytes / 1e6:.1f} MB{where}", final=True)
    return 0


def _export_http(
    args: argparse.Namespace,
    since: datetime | None,
    until: datetime | None,
    out: Any,
    progress: _Progress,
) -> tuple[int, int | None]:
    import os

    import httpx

    params: dict[str, str] = {"format": args.format}
    for f in EXPORT_FILTERS:
        v = getattr(args, f)
        if v is not None:
            params[f] = v
    if since:
        params["since"] = since.isoformat()
    if until:
        params["until"] = until.isoformat()
    key = args.api_key or os.environ.get("AGENTWATCH_API_KEY") or ""
    headers = {"Authorization": f"Bearer {key.strip()}"} if key.strip() else {}
    url = args.server.rstrip("/") + "/api/export"
    n_bytes = 0
    lines = 0
    try:
        with httpx.stream(
            "GET", url, params=params, headers=headers, timeout=httpx.Timeout(60.0)
        ) as r:
            if r.status_code != 200:
                r.read()
                try:
                    detail = r.json().get("detail", r.text)
                except ValueError:
                    detail = r.text
                raise CliError(f"{url}: HTTP {r.status_code}: {str(detail)[:500]}")
            for part in r.iter_bytes():
                out.write(part)
                n_bytes += len(part)
                lines += part.count(b"\n")
                shown = f"{lines} events, " if args.format == "jsonl" else ""
                progress.update(f"{shown}{n_bytes / 1e6:.1f} MB received")
    except httpx.HTTPError as e:
        raise CliError(f"{url}: {e}") from None
    return n_bytes, (lines if args.format == "jsonl" else None)


def _export_db(
    args: argparse.Namespace,
    since: datetime | None,
    until: datetime | None,
    out: Any,
    progress: _Progress,
) -> tuple[int, int | None]:
    from agentwatch import export
    from agentwatch.schema import epoch_us
    from agentwatch.store.dialect import is_url
    from agentwatch.store.explore import EventQuery

    if not is_url(args.db) and not Path(args.db).expanduser().is_file():
        raise CliError(f"--db {args.db}: no such SQLite file")
    store = open_store(args.db, maintenance=False)
    q = EventQuery(
        agent_name=args.agent_name,
        task_name=args.task_name,
        model=args.model,
        status=args.status,
        kind=args.kind,
        since_us=epoch_us(since) if since else None,
        until_us=epoch_us(until) if until else None,
    )
    n_events = n_bytes = 0

    def counted() -> Any:
        nonlocal n_events
        for rows in store.export_events(q):
            n_events += len(rows)
            yield rows

    from sqlalchemy.exc import SQLAlchemyError

    from agentwatch.store.base import error_line

    try:
        for part in export.encode(args.format, counted()):
            out.write(part)
            n_bytes += len(part)
            progress.update(f"{n_events} events, {n_bytes / 1e6:.1f} MB written")
    except SQLAlchemyError as e:
        raise CliError(f"database {shown_db(args.db)}: {error_line(e)}") from None
    finally:
        store.close()
    return n_bytes, n_events


def cmd_reprice(args: argparse.Namespace) -> int:
    """Recompute stored costs from the price book, then the pre-aggregates."""
    from agentwatch.pricing import PriceBook, PriceFileError
    from agentwatch.schema import epoch_us
    from agentwatch.store.dialect import is_url

    since = _export_time("since", args.since)
    until = _export_time("until", args.until)
    assert since is not None
    if until and since > until:
        raise CliError("--since must not be later than --until")
    try:
        book = PriceBook.from_file(args.prices)
    except PriceFileError as e:
        raise CliError(str(e)) from None
    if not is_url(args.db) and not Path(args.db).expanduser().is_file():
        raise CliError(f"--db {args.db}: no such SQLite file")
    store = open_store(args.db, maintenance=False)
    progress = _Progress(args.quiet)
    try:
        res = _store_call(
            args.db,
            store.reprice,
            book.rates,
            epoch_us(since),
            epoch_us(until) if until else None,
            args.dry_run,
            lambda r: progress.update(f"{r.scanned} calls read, {r.changed} to change"),
        )
        recounted = 0
        if not args.dry_run and res.changed:
            # Bring the changed days' pre-aggregates back in step now (a
            # running server's writer would do it within a minute anyway).
            while _store_call(args.db, store.recount_dirty, 0, 0) != -1:
                recounted += 1
    finally:
        store.close()
    progress.update(f"{res.scanned} calls read, {res.changed} to change", final=True)
    if res.by_model:
        rows = [("MODEL", "CALLS", "OLD USD", "NEW USD", "DIFFERENCE")]
        order = sorted(res.by_model.items(), key=lambda kv: -abs(kv[1].new_usd - kv[1].old_usd))
        for model, m in order:
            rows.append(
                (
                    model,
                    str(m.events),
                    f"{m.old_usd:.6f}",
                    f"{m.new_usd:.6f}",
                    f"{m.new_usd - m.old_usd:+.6f}",
                )
            )
        rows.append(
            (
                "total",
                str(res.changed),
                f"{res.old_usd:.6f}",
                f"{res.new_usd:.6f}",
                f"{res.new_usd - res.old_usd:+.6f}",
            )
        )
        widths = [max(len(r[i]) for r in rows) for i in range(5)]
        for r in rows:
            print(
                "  ".join(
                    v.ljust(w) if i == 0 else v.rjust(w)
                    for i, (v, w) in enumerate(zip(r, widths, strict=True))
                ).rstrip()
            )
    days = len(res.days)
    if args.dry_run:
        print(
            f"dry run: {res.changed} of {res.scanned} calls would change (on {days} days); "
            "nothing written"
        )
    else:
        print(
            f"repriced {res.changed} of {res.scanned} calls (on {days} days); "
            f"pre-aggregates recounted for {recounted} days"
        )
    return 0


def cmd_demo(argv: list[str]) -> int:
    from agentwatch import demo

    return int(demo.main(argv) or 0)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="agentwatch", description="AgentWatch: self-hosted observability for AI agents."
    )
    parser.add_argument("--version", action="version", version=f"agentwatch {__version__}")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    serve = sub.add_parser(
        "serve",
        help="Run the server and dashboard",
        description="Run the AgentWatch server and dashboard.",
    )
    _add_settings(serve)
    serve.set_defaults(func=cmd_serve)
    prune = sub.add_parser(
        "prune",
        help="Delete events older than a date",
        description="Delete events older than a date, in small chunks.",
    )
    _add_settings(prune, ("db",))
    prune.add_argument("--before", required=True, help="ISO date or datetime (naive means UTC)")
    prune.set_defaults(func=cmd_prune)
    rebuild = sub.add_parser(
        "rebuild-rollups",
        help="Recompute the metrics pre-aggregates from the raw events",
        description="Recompute the metrics pre-aggregates from the raw events. "
        "Stop the server first: events ingested meanwhile could be counted twice.",
    )
    _add_settings(rebuild, ("db",))
    rebuild.set_defaults(func=cmd_rebuild)
    keys = sub.add_parser(
        "keys",
        help="Create, list and revoke API keys",
        description="Manage the API keys of the store at --db (the same database as "
        "`agentwatch serve`, which may be running; changes reach it within 5 seconds). "
        "See docs/security.md.",
    )
    keys_sub = keys.add_subparsers(dest="keys_command", metavar="ACTION", required=True)
    kc = keys_sub.add_parser(
        "create",
        help="Create a key and print its secret (once)",
        description="Create a key. Its secret is printed alone on stdout, once; only a "
        "hash is stored. ingest: send events; read: queries, live stream, dashboard; "
        "admin: everything.",
    )
    kc.add_argument("--scope", required=True, choices=("ingest", "read", "admin"))
    kc.add_argument("--name", required=True, help="a unique name, e.g. prod-sdk or dashboard")
    _add_settings(kc, ("db",))
    kc.set_defaults(func=cmd_keys_create)
    kl = keys_sub.add_parser(
        "list",
        help="List keys (never their secrets)",
        description="List keys: name, scope, public id, created, last used (to the minute).",
    )
    _add_settings(kl, ("db",))
    kl.set_defaults(func=cmd_keys_list)
    kr = keys_sub.add_parser(
        "revoke",
        help="Revoke a key by name",
        description="Delete a key; servers refuse "
        "it within 5 seconds. Revoking the last key returns the server to protected mode.",
    )
    kr.add_argument("name")
    _add_settings(kr, ("db",))
    kr.set_defaults(func=cmd_keys_revoke)
    al = sub.add_parser(
        "alerts",
        help="List alert rules, send a test notification",
        description="Alert rules of the store at --db (the same database as `agentwatch "
        "serve`, which may be running). Rules are made over the API or in the dashboard. "
        "See docs/alerts.md.",
    )
    al_sub = al.add_subparsers(dest="alerts_command", metavar="ACTION", required=True)
    all_ = al_sub.add_parser(
        "list",
        help="List rules with their state and last value",
        description="List alert rules: state, last value, rule, filters, last evaluation.",
    )
    _add_settings(all_, ("db",))
    all_.set_defaults(func=cmd_alerts_list)
    alt = al_sub.add_parser(
        "test",
        help="Send a test notification to a rule's webhook",
        description="POST a notification with state `test` to the rule's webhook now "
        "(signed with its secret) and print the outcome; recorded in the rule's history.",
    )
    alt.add_argument("name", help="the rule's name")
    _add_settings(alt, ("db", "public_url"))
    alt.set_defaults(func=cmd_alerts_test)
    mig = sub.add_parser(
        "migrate-db",
        help="Copy a store into another (e.g. SQLite into PostgreSQL)",
        description="Copy every event of a store (typically a SQLite file) into another "
        "(typically postgresql://...), creating its schema if needed. Idempotent: events "
        "already in the destination are skipped, so rerunning copies nothing twice. "
        "The destination may be serving meanwhile.",
    )
    mig.add_argument("--from", dest="src", required=True, metavar="DB", help="source store")
    mig.add_argument("--to", dest="dst", required=True, metavar="DB", help="destination store")
    mig.add_argument("--chunk", type=int, default=5000, help="events per transaction")
    mig.add_argument("--quiet", action="store_true", help="no progress line")
    mig.set_defaults(func=cmd_migrate_db)
    ex = sub.add_parser(
        "export",
        help="Export events as CSV or JSON Lines",
        description="Export every event matching the filters, oldest first, from a running "
        "server (--server, needs a read key) or straight from a database (--db). Written to "
        "stdout unless -o names a file; a progress line goes to stderr.",
    )
    ex.add_argument("--format", choices=("csv", "jsonl"), default="csv")
    ex.add_argument("--agent-name")
    ex.add_argument("--task-name")
    ex.add_argument("--model")
    ex.add_argument("--status", choices=("success", "error"))
    ex.add_argument("--kind", choices=("llm", "task", "tool"))
    ex.add_argument("--since", help="ISO date or datetime, inclusive (naive means UTC)")
    ex.add_argument("--until", help="ISO date or datetime, inclusive (naive means UTC)")
    ex.add_argument("--server", metavar="URL", help="a running server, e.g. http://localhost:8787")
    ex.add_argument(
        "--api-key", metavar="KEY", help="read key for --server (default: $AGENTWATCH_API_KEY)"
    )
    ex.add_argument("--db", metavar="PATH_OR_URL", help="SQLite file or postgresql:// URL")
    ex.add_argument("-o", "--output", metavar="FILE", help="write here instead of stdout")
    ex.add_argument("--quiet", action="store_true", help="no progress line")
    ex.set_defaults(func=cmd_export)
    rp = sub.add_parser(
        "reprice",
        help="Recompute stored costs after a price change",
        description="Recompute the cost of stored LLM calls from the price book (the "
        "built-in rates and --prices FILE), then their metrics pre-aggregates. Calls that "
        "carried their own cost_usd are never touched. --dry-run shows the difference in "
        "dollars per model and writes nothing. Safe while a server runs on the database.",
    )
    rp.add_argument("--since", required=True, help="ISO date or datetime (naive means UTC)")
    rp.add_argument("--until", help="ISO date or datetime, inclusive (default: no end)")
    rp.add_argument("--dry-run", action="store_true", help="show the difference, write nothing")
    rp.add_argument("--quiet", action="store_true", help="no progress line")
    _add_settings(rp, ("db", "prices"))
    rp.set_defaults(func=cmd_reprice)
    sub.add_parser(
        "demo", help="Send simulated traffic (see `agentwatch demo --help`)", add_help=False
    )
    return parser


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    if argv and argv[0] == "demo":
        return cmd_demo(argv[1:])
    parser = build_parser()
    try:
        args = parser.parse_args(argv)
        if not getattr(args, "func", None):
            parser.print_help()
            return 2
        return int(args.func(args))
    except (CliError, StartError) as e:
        print(f"agentwatch: error: {e}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        return 130
    except Exception as e:  # settings from the environment, etc.
        from agentwatch.server.settings import SettingsError

        if isinstance(e, SettingsError):
            print(f"agentwatch: error: {e}", file=sys.stderr)
            return 1
        raise


if __name__ == "__main__":
    raise SystemExit(main())
