"""The price book: user file, bundled snapshot, built-in names, fallback."""

from __future__ import annotations

from pathlib import Path

import pytest

from agentwatch.pricing import FALLBACK, PriceBook, PriceFileError, load_price_file


def test_brief_table_prices() -> None:
    pb = PriceBook()
    table = {
        "gpt-4o": (2.50, 10.00),
        "gpt-4o-mini": (0.15, 0.60),
        "gpt-3.5-turbo": (0.50, 1.50),
        "claude-opus-4-20250514": (15.00, 75.00),
        "claude-sonnet-4-20250514": (3.00, 15.00),
        "claude-haiku-3-5-20241022": (0.80, 4.00),
    }
    for model, (pin, pout) in table.items():
        r = pb.rates(model)
        assert (r.input, r.output) == pytest.approx((pin, pout)), model
        assert pb.cost(model, 1_000_000, 1_000_000) == pytest.approx(pin + pout)


def test_fallback_is_brief_rate() -> None:
    pb = PriceBook()
    assert pb.rates("no-such-model-xyz") is FALLBACK
    assert pb.cost("no-such-model-xyz", 1000, 1000) == pytest.approx(0.003 + 0.015)


def test_cache_tokens_priced_apart() -> None:
    pb = PriceBook()
    # claude-sonnet-4: $3 input, $0.30 cache read, $3.75 cache write per million.
    cost = pb.cost(
        "claude-sonnet-4-20250514",
        1_000_000,
        0,
        cache_read_tokens=500_000,
        cache_write_tokens=250_000,
    )
    assert cost == pytest.approx(0.25 * 3 + 0.5 * 0.30 + 0.25 * 3.75)


def test_user_file_wins(tmp_path: Path) -> None:
    f = tmp_path / "p.json"
    f.write_text(
        '{"models": {"gpt-4o": {"input": 1, "output": 2, "cache_read": 0.5},'
        ' "in-house-llm": {"input": 0.1, "output": 0.2}}}'
    )
    pb = PriceBook.from_file(f)
    assert pb.rates("gpt-4o").source == "user"
    assert pb.cost("gpt-4o", 1_000_000, 1_000_000, cache_read_tokens=1_000_000) == 2.5
    assert pb.cost("in-house-llm", 1_000_000, 0) == pytest.approx(0.1)
    assert pb.rates("gpt-4o-mini").source == "genai-prices"


def test_toml_price_file(tmp_path: Path) -> None:
    f = tmp_path / "p.toml"
    f.write_text('[models."my-model"]\ninput = 1.5\noutput = 3\n')
    assert load_price_file(f)["my-model"].output == 3.0


@pytest.mark.parametrize(
    ("content", "message"),
    [
        ("{", "not valid"),
        ('{"models": {"m": {"output": 1}}}', "missing 'input'"),
        ('{"models": {"m": {"input": "x", "output": 1}}}', "must be numbers"),
        ('{"models": {"m": {"input": -1, "output": 1}}}', ">= 0"),
        ("[1]", "mapping"),
    ],
)
def test_bad_price_files(tmp_path: Path, content: str, message: str) -> None:
    f = tmp_path / "p.json"
    f.write_text(content)
    with pytest.raises(PriceFileError, match=message):
        load_price_file(f)


def test_missing_price_file(tmp_path: Path) -> None:
    with pytest.raises(PriceFileError, match="cannot read"):
        load_price_file(tmp_path / "nope.json")
