"""The command line: ``python demo.py`` and ``agentwatch demo``, backfill and live modes."""

from __future__ import annotations

import argparse
import os
import random
import signal
import sys
import time
from datetime import UTC, datetime
from typing import TextIO

from agentwatch.demo.generator import (
    BACKFILL_DAYS,
    DEFAULT_SEED,
    Generator,
    backfill_events,
    live_batch,
)
from agentwatch.demo.send import DemoError, batches, post_events
from agentwatch.demo.view import (
    RED,
    RESET,
    Progress,
    Session,
    colour_enabled,
    cost_fn,
    format_line,
    summary,
)
from agentwatch.sdk.config import DEFAULT_SERVER_URL as DEFAULT_SERVER

# Events per POST: large enough that a backfill is a handful of requests,
# small enough that the progress bar moves.
BATCH_SIZE = 250


def run_backfill(
    server: str,
    seed: int = DEFAULT_SEED,
    end: datetime | None = None,
    out: TextIO | None = None,
    api_key: str | None = None,
) -> int:
    out = out or sys.stdout
    events = backfill_events(seed=seed, end=end)
    agents = sorted({e["agent_name"] for e in events})
    runs = sum(1 for e in events if e["kind"] == "task")
    out.write(
        f"Backfilling {len(events):,} events ({runs:,} task runs, {len(agents)} agents, "
        f"{BACKFILL_DAYS} days) into {server}\n"
    )
    progress = Progress(len(events), out)
    done = 0
    progress.update(0)
    for batch in batches(events, BATCH_SIZE):
        post_events(server, batch, api_key=api_key)
        done += len(batch)
        progress.update(done)
    out.write(f"Done. Open {server.rstrip('/')}/ to see the dashboard.\n")
    return len(events)


def run_live(
    server: str,
    speed: float = 1.0,
    seed: int | None = None,
    max_batches: int | None = None,
    out: TextIO | None = None,
    api_key: str | None = None,
) -> Session:
    out = out or sys.stdout
    colour = colour_enabled(out)
    gen = Generator(
        seed if seed is not None else random.SystemRandom().randrange(2**32),
        stream=f"live-{time.time_ns()}",
    )
    cost_of = cost_fn()
    session = Session()
    out.write(f"Streaming simulated events to {server} (speed x{speed:g}); Ctrl+C to stop.\n")
    out.flush()
    posted = 0
    try:
        while max_batches is None or posted < max_batches:
            events = live_batch(gen, datetime.now(UTC))
            try:
                post_events(server, events, timeout=10.0, api_key=api_key)
            except DemoError as exc:
                session.failed_posts += 1
                out.write(f"{RED if colour else ''}! {exc}{RESET if colour else ''}\n")
            else:
                for e in events:
                    cost = cost_of(e)
                    session.add(e, cost)
                    out.write(format_line(e, cost, colour) + "\n")
            out.flush()
            posted += 1
            if max_batches is not None and posted >= max_batches:
                break
            time.sleep(gen.rng.uniform(2.0, 5.0) / speed)
    except KeyboardInterrupt:
        pass
    out.write(summary(session, colour))
    out.flush()
    return session


def default_server() -> str:
    """AGENTWATCH_SERVER_URL, as for the SDK; the older AGENTWATCH_SERVER still works."""
    return (
        os.environ.get("AGENTWATCH_SERVER_URL")
        or os.environ.get("AGENTWATCH_SERVER")
        or DEFAULT_SERVER
    )


def build_parser(prog: str = "demo.py") -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog=prog,
        description="Send simulated AI-agent traffic to an AgentWatch server.",
    )
    mode = p.add_mutually_exclusive_group()
    mode.add_argument("--live", action="store_true", help="stream simulated events (default mode)")
    mode.add_argument(
        "--backfill", action="store_true", help="write 7 days of history (about 3,500 events)"
    )
    p.add_argument(
        "--server",
        metavar="URL",
        default=default_server(),
        help=f"AgentWatch server (default: $AGENTWATCH_SERVER_URL, else {DEFAULT_SERVER})",
    )
    p.add_argument(
        "--speed",
        metavar="MULTIPLIER",
        type=float,
        default=1.0,
        help="speed multiplier for live mode (default: 1.0)",
    )
    p.add_argument(
        "--seed",
        type=int,
        default=None,
        help=f"random seed (backfill default: {DEFAULT_SEED}; live default: random)",
    )
    p.add_argument(
        "--end",
        metavar="ISO8601",
        default=None,
        help="backfill: end of the 7-day window (default: now, rounded down to 10 minutes)",
    )
    p.add_argument(
        "--batches",
        type=int,
        default=None,
        metavar="N",
        help="live: stop after N batches instead of running until Ctrl+C",
    )
    p.add_argument(
        "--api-key",
        metavar="KEY",
        default=os.environ.get("AGENTWATCH_API_KEY") or None,
        help="API key with the ingest scope, for a server that requires one "
        "(default: $AGENTWATCH_API_KEY)",
    )
    return p


def main(argv: list[str] | None = None) -> int:
    # `agentwatch demo ...` and `python demo.py ...` both name themselves correctly.
    invoked = os.path.basename(sys.argv[0]) if sys.argv and sys.argv[0] else "demo.py"
    prog = "agentwatch demo" if invoked.startswith("agentwatch") else "demo.py"
    args = build_parser(prog).parse_args(argv)
    if args.speed <= 0:
        print("demo: --speed must be > 0", file=sys.stderr)
        return 2
    server = args.server.rstrip("/")
    try:
        if args.backfill:
            end = None
            if args.end:
                end = datetime.fromisoformat(args.end)
            seed = DEFAULT_SEED if args.seed is None else args.seed
            run_backfill(server, seed=seed, end=end, api_key=args.api_key)
            return 0
        # SIGTERM ends a live session as cleanly as Ctrl+C (summary included).
        if hasattr(signal, "SIGTERM"):
            signal.signal(signal.SIGTERM, signal.default_int_handler)
        run_live(
            server,
            speed=args.speed,
            seed=args.seed,
            max_batches=args.batches,
            api_key=args.api_key,
        )
        return 0
    except DemoError as exc:
        print(f"\ndemo: {exc}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        print("\ndemo: interrupted", file=sys.stderr)
        return 130


if __name__ == "__main__":  # pragma: no cover
    raise SystemExit(main())
