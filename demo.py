"""Simulated agent traffic: `python demo.py --backfill` or `python demo.py --live`.

A thin wrapper around `agentwatch.demo` (the same as `agentwatch demo`).
"""

from agentwatch.demo import main

raise SystemExit(main())
