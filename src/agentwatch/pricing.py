"""The price book: token usage -> cost in US dollars.

Lookup order for a model's rates:
1. the user's price file (``--prices FILE`` / ``AGENTWATCH_PRICES``),
2. a short built-in table for names the brief uses that the genai-prices
   snapshot spells differently,
3. the ``genai-prices`` snapshot bundled with that package (offline, no network),
4. the fallback: $3 per million input tokens, $15 per million output tokens.

Rates are resolved once per (provider, model) and cached, so pricing an event
is a dict lookup and four multiplications.

Token semantics follow the event contract: ``input_tokens`` counts all input,
cached included; ``cache_read_tokens`` and ``cache_write_tokens`` are the parts
of it billed at their own rates; ``reasoning_tokens`` are part of the output.
"""

from __future__ import annotations

import json
import logging
import threading
import tomllib
from dataclasses import dataclass
from pathlib import Path
from typing import Any

log = logging.getLogger("agentwatch.pricing")

PER_MILLION = 1_000_000.0


@dataclass(frozen=True, slots=True)
class Rates:
    """US dollars per million tokens."""

    input: float
    output: float
    cache_read: float
    cache_write: float
    source: str  # "user", "genai-prices", "builtin" or "fallback"

    def cost(
        self,
        input_tokens: int,
        output_tokens: int,
        cache_read_tokens: int = 0,
        cache_write_tokens: int = 0,
    ) -> float:
        uncached = max(input_tokens - cache_read_tokens - cache_write_tokens, 0)
        total = (
            uncached * self.input
            + cache_read_tokens * self.cache_read
            + cache_write_tokens * self.cache_write
            + output_tokens * self.output
        )
        return total / PER_MILLION


# The brief's fallback: $0.003 per 1k input, $0.015 per 1k output.
FALLBACK = Rates(input=3.0, output=15.0, cache_read=3.0, cache_write=3.0, source="fallback")

# Names from the brief's price table that the genai-prices snapshot does not
# know under that spelling. Rates are Anthropic's published Claude 3.5 Haiku
# prices (cache read 10% of input, cache write 125%).
BUILTIN: dict[str, Rates] = {
    "claude-haiku-3-5-20241022": Rates(0.80, 4.00, 0.08, 1.00, "builtin"),
}


class PriceFileError(ValueError):
    """The user's price file could not be read; the message says where and why."""


def load_price_file(path: str | Path) -> dict[str, Rates]:
    """Read a JSON or TOML price file.

    Shape (rates in US dollars per million tokens; cache rates default to the
    input rate)::

        {"models": {"my-model": {"input": 1.0, "output": 2.0,
                                 "cache_read": 0.1, "cache_write": 1.25}}}

    A top-level mapping without the ``models`` key is accepted too.
    """
    p = Path(path)
    try:
        raw = p.read_bytes()
    except OSError as e:
        raise PriceFileError(f"cannot read price file {p}: {e.strerror or e}") from None
    try:
        data: Any = tomllib.loads(raw.decode()) if p.suffix == ".toml" else json.loads(raw)
    except (ValueError, UnicodeDecodeError) as e:
        raise PriceFileError(f"price file {p} is not valid {p.suffix or 'JSON'}: {e}") from None
    if isinstance(data, dict) and isinstance(data.get("models"), dict):
        data = data["models"]
    if not isinstance(data, dict):
        raise PriceFileError(f"price file {p}: expected a mapping of model name to rates")
    out: dict[str, Rates] = {}
    for name, spec in data.items():
        if not isinstance(spec, dict):
            raise PriceFileError(f"price file {p}: model {name!r}: expected a mapping of rates")
        try:
            inp = float(spec["input"])
            outp = float(spec["output"])
            cr = float(spec.get("cache_read", inp))
            cw = float(spec.get("cache_write", inp))
        except KeyError as e:
            raise PriceFileError(f"price file {p}: model {name!r}: missing {e.args[0]!r}") from None
        except (TypeError, ValueError):
            raise PriceFileError(f"price file {p}: model {name!r}: rates must be numbers") from None
        if min(inp, outp, cr, cw) < 0:
            raise PriceFileError(f"price file {p}: model {name!r}: rates must be >= 0")
        out[str(name)] = Rates(inp, outp, cr, cw, "user")
    return out


def _genai_rates(model: str, provider: str | None) -> Rates | None:
    """Rates from the bundled genai-prices snapshot, or None if it does not know the model."""
    try:
        from genai_prices import Usage, calc_price
    except ImportError:  # pragma: no cover - it is a dependency of the server
        return None
    m = 1_000_000

    def price(**usage: int) -> Any:
        return calc_price(Usage(**usage), model_ref=model, provider_id=provider)

    try:
        base = price(input_tokens=m, output_tokens=m)
        cached = price(input_tokens=m, cache_read_tokens=m)
        written = price(input_tokens=m, cache_write_tokens=m)
    except LookupError:
        if provider is not None:
            return _genai_rates(model, None)
        return None
    except Exception:  # a malformed snapshot entry must not break ingest
        log.warning("genai-prices failed for model %r; using fallback", model, exc_info=True)
        return None
    return Rates(
        input=float(base.input_price),
        output=float(base.output_price),
        cache_read=float(cached.input_price),
        cache_write=float(written.input_price),
        source="genai-prices",
    )


class PriceBook:
    """Resolves and caches rates per (provider, model); safe to share between threads."""

    def __init__(self, user_prices: dict[str, Rates] | None = None) -> None:
        self._user = dict(user_prices or {})
        self._cache: dict[tuple[str | None, str], Rates] = {}
        self._lock = threading.Lock()

    @classmethod
    def from_file(cls, path: str | Path | None) -> PriceBook:
        return cls(load_price_file(path) if path else None)

    def rates(self, model: str, provider: str | None = None) -> Rates:
        key = (provider, model)
        r = self._cache.get(key)
        if r is None:
            r = self._resolve(model, provider)
            with self._lock:
                self._cache[key] = r
        return r

    def _resolve(self, model: str, provider: str | None) -> Rates:
        if model in self._user:
            return self._user[model]
        if not model:
            return FALLBACK
        if model in BUILTIN:
            return BUILTIN[model]
        return _genai_rates(model, provider) or FALLBACK

    def cost(
        self,
        model: str,
        input_tokens: int,
        output_tokens: int,
        cache_read_tokens: int = 0,
        cache_write_tokens: int = 0,
        provider: str | None = None,
    ) -> float:
        return self.rates(model, provider).cost(
            input_tokens, output_tokens, cache_read_tokens, cache_write_tokens
        )
