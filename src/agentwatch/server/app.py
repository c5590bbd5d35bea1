"""The FastAPI application: routers, live stream wiring, dashboard files."""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any, cast

from fastapi import FastAPI, Request
from fastapi.middleware.cors import CORSMiddleware
from fastapi.openapi.docs import get_swagger_ui_html
from fastapi.openapi.utils import get_openapi
from fastapi.responses import HTMLResponse, JSONResponse
from fastapi.staticfiles import StaticFiles
from sqlalchemy.exc import InterfaceError, OperationalError

from agentwatch._version import __version__
from agentwatch.clock import DAY_US
from agentwatch.pricing import PriceBook
from agentwatch.schema import EventBatch
from agentwatch.server import prom
from agentwatch.server.alerting import Deliverer, Evaluator
from agentwatch.server.api import (
    alerts,
    events,
    explore,
    export,
    health,
    metrics,
    otlp,
    prometheus,
    quality,
    session,
    stream,
)
from agentwatch.server.auth import Access, Gate, csp_with_inline_scripts, document
from agentwatch.server.broadcast import Broadcaster, LiveFeed
from agentwatch.server.guard import QueryGuard
from agentwatch.server.ingest import Writer
from agentwatch.server.reads import ReadRouted
from agentwatch.server.settings import Settings
from agentwatch.server.state import AppState
from agentwatch.store.base import Store, error_line

log = logging.getLogger("agentwatch.server")

STATIC_DIR = Path(__file__).parent / "static"


def create_app(settings: Settings, store: Store, prices: PriceBook | None = None) -> FastAPI:
    """Build the app around an open (migrated) store. The caller closes the store."""
    broadcaster = Broadcaster(settings.sse_buffer)

    feed = LiveFeed(broadcaster, settings.sse_buffer)
    # Prometheus counts (server/prom.py): the writer reports each commit's
    # new rows to them; refused ingest is counted by a middleware.
    counts = prom.Metrics(settings.metrics_max_series)
    writer = Writer(store, feed.on_commit, counts.committed)
    counts.queue_depth = writer.queue_depth
    counts.live_clients = lambda: len(broadcaster.subscribers)
    rejects = prom.RejectFlusher(counts, store.add_rejects)
    access = Access(store, settings.auth, settings.allowed_hosts, settings.host, STATIC_DIR)
    # The routers' store: the dashboard's queries go to a reader process
    # (server/reads.py); writes, upkeep and alerts use `store` itself.
    workers = 0 if ":memory:" in settings.db else settings.read_workers
    reads = ReadRouted(store, settings.db, workers)
    st = AppState(
        settings,
        cast(Store, reads),
        prices or PriceBook.from_file(settings.prices),
        writer,
        broadcaster,
        reads=reads,
    )
    # Alerts (issue 13): both loops are threads of their own, never on the
    # event loop nor the writer; delivery runs on every server, evaluation on
    # the one holding the lease.
    deliverer = Deliverer(
        store,
        min(1.0, settings.alert_interval),
        settings.alert_retry_base,
        settings.alert_retry_for,
    )
    evaluator = Evaluator(
        store, settings.alert_interval, settings.dashboard_url, on_queued=deliverer.wake
    )
    st.evaluator = evaluator

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        st.loop = asyncio.get_running_loop()
        # Keys are in memory before the first request; then reloaded every
        # few seconds, so `agentwatch keys` changes reach every server.
        await asyncio.to_thread(access.keys.refresh)
        access.rules.load(app.openapi())
        _announce(access, settings)
        keys_task = asyncio.create_task(access.keys.run()) if access.on else None
        # With a shared database every server streams what any of them
        # committed, read back in commit order; with SQLite, its own commits.
        await feed.start(store)
        writer.start()
        rejects.start()
        reads.start()
        upkeep = asyncio.create_task(_maintenance(store, settings.retention_days))
        deliverer.start()
        evaluator.start()
        try:
            yield
        finally:
            upkeep.cancel()
            await asyncio.to_thread(evaluator.stop)
            await asyncio.to_thread(deliverer.stop)
            if keys_task is not None:
                keys_task.cancel()
                if access.keys.any:
                    await asyncio.to_thread(access.keys.flush)  # last-used times
            await asyncio.to_thread(reads.stop)
            await feed.stop(store)
            # Commit whatever is queued before the process goes (Ctrl+C loses nothing).
            await asyncio.to_thread(writer.stop)
            await asyncio.to_thread(rejects.stop)

    app = FastAPI(
        title="AgentWatch",
        version=__version__,
        description="Self-hosted observability for AI agents. See docs/http-api.md.",
        lifespan=lifespan,
        # FastAPI's own /docs page loads Swagger UI from a CDN; ours serves the
        # vendored copy so the API page works with no internet.
        docs_url=None,
        redoc_url=None,
    )

    docs_page = get_swagger_ui_html(
        openapi_url="/openapi.json",
        title="AgentWatch API",
        swagger_js_url="/vendor/swagger-ui/swagger-ui-bundle.js",
        swagger_css_url="/vendor/swagger-ui/swagger-ui.css",
        swagger_favicon_url="/favicon.svg",
        # No badge fetched from validator.swagger.io: nothing leaves the machine.
        swagger_ui_parameters={"validatorUrl": None},
    ).body
    # FastAPI's page starts Swagger UI with an inline script: allow that one
    # block by its hash rather than opening the policy to inline scripts.
    docs_csp = csp_with_inline_scripts(bytes(docs_page).decode())

    @app.get("/docs", include_in_schema=False)
    async def swagger_ui() -> HTMLResponse:
        return HTMLResponse(docs_page, headers={"Content-Security-Policy": docs_csp})

    app.state.aw = st
    app.state.prom = counts
    app.state.access = access

    @app.exception_handler(OperationalError)
    @app.exception_handler(InterfaceError)
    async def storage_down(request: Request, exc: Exception) -> JSONResponse:
        # The database is unreachable or restarting: a query gets the same
        # retryable answer as a failed ingest commit, not a 500. Connections
        # are re-checked on the next checkout (pool_pre_ping), so this clears
        # by itself when the database is back.
        first = error_line(exc)
        log.warning("storage unavailable: %s", first)
        return JSONResponse(
            {"detail": f"storage unavailable: {first}"},
            status_code=503,
            headers={"Retry-After": "1"},
        )

    # Innermost, so that its 422 passes the gate's headers and CORS on the way out.
    app.add_middleware(QueryGuard)
    app.add_middleware(Gate, access=access)
    # Outside the gate: an ingest refused for its key counts as refused too.
    app.add_middleware(prom.IngestWatch, metrics=counts)
    if settings.cors_list:
        # Outside the gate, so that preflights (which carry no key) are
        # answered here; the requests themselves still need their key.
        app.add_middleware(
            CORSMiddleware,
            allow_origins=settings.cors_list,
            allow_methods=["GET", "POST", "PATCH", "DELETE", "OPTIONS"],
            allow_headers=["*"],
            max_age=600,
        )
    for r in (
        events.router,
        metrics.router,
        stream.router,
        health.router,
        session.router,
        otlp.router,
        explore.router,
        alerts.router,
        export.router,
        prometheus.router,
        quality.router,
    ):
        app.include_router(r)

    def openapi() -> dict[str, Any]:
        if app.openapi_schema is None:
            spec = get_openapi(
                title=app.title, version=app.version, description=app.description, routes=app.routes
            )
            schema = EventBatch.model_json_schema(ref_template="#/components/schemas/{model}")
            comps = spec.setdefault("components", {}).setdefault("schemas", {})
            comps.update(schema.pop("$defs", {}))
            comps["EventBatch"] = schema
            document(spec)
            app.openapi_schema = spec
        return app.openapi_schema

    app.openapi = openapi  # type: ignore[method-assign]
    if STATIC_DIR.is_dir():
        app.mount("/", StaticFiles(directory=STATIC_DIR, html=True), name="dashboard")
    return app


def _announce(access: Access, settings: Settings) -> None:
    if not access.on:
        log.warning(
            "authentication is off (--auth off): anyone who can reach port %d can read "
            "and write every event, without a key",
            settings.port,
        )
    elif access.keys.any:
        log.info("%d API key(s): every request needs one (see docs/security.md)", len(access.keys))
    else:
        log.info(
            "protected mode: no API key exists, so only this machine is served; create one "
            "with `agentwatch keys create --scope ingest|read|admin --name NAME`"
        )


RETENTION_EVERY_S = 3600.0  # the cut moves a day at a time; hourly is prompt enough
MAINTENANCE_EVERY_S = 600.0


async def _maintenance(store: Store, retention_days: int) -> None:
    """Periodic upkeep, each step on a worker thread in small transactions so
    that ingest and queries never wait long:

    - every ten minutes, drop minute rollup rows past their horizon
      (store/rollups.py keeps minute detail for recent data only);
    - hourly, with --retention-days N, delete events (and their rollups) older
      than N whole days. The cut is aligned to midnight UTC, so whole rollup
      days go and no day has to be recounted. Freed pages are reused by later
      inserts.
    """
    next_retention = 0.0
    while True:
        try:
            await asyncio.to_thread(store.prune_minute_rollups)
        except Exception as e:  # the database may be briefly away; try next time
            log.warning("rollup upkeep failed: %s", e)
        if retention_days > 0 and time.monotonic() >= next_retention:
            next_retention = time.monotonic() + RETENTION_EVERY_S
            cut = (int(time.time() * 1_000_000) - retention_days * DAY_US) // DAY_US * DAY_US
            try:
                n = await asyncio.to_thread(store.delete_events_before, cut)
                if n:
                    log.info("retention: deleted %d events older than %d days", n, retention_days)
            except Exception as e:
                log.warning("retention run failed: %s", e)
        await asyncio.sleep(MAINTENANCE_EVERY_S)
