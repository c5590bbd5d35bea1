"""What the routers share: the store, the price book, the writer, the broadcaster."""

from __future__ import annotations

import asyncio
from dataclasses import dataclass
from typing import Any

from agentwatch.pricing import PriceBook
from agentwatch.server.broadcast import Broadcaster
from agentwatch.server.ingest import Writer
from agentwatch.server.reads import ReadRouted
from agentwatch.server.settings import Settings
from agentwatch.store.base import Store


@dataclass
class AppState:
    settings: Settings
    store: Store
    prices: PriceBook
    writer: Writer
    broadcaster: Broadcaster
    loop: asyncio.AbstractEventLoop | None = None
    evaluator: Any = None  # server/alerting.Evaluator
    reads: ReadRouted | None = None  # `store` is this, typed as the Store it stands for
