from __future__ import annotations

import pytest

from thrifty.pricing.account import bill
from thrifty.pricing.catalog import Catalog, Price
from thrifty.pricing.cost import call_cost
from thrifty.pricing.tokens import TokenCounter
from thrifty.types import Usage

P = Price("m", "x", input=2.0, output=8.0, cached_input=0.5, cache_write=2.5)


def test_cost_with_cached_and_cache_write_tokens():
    usage = Usage(input_tokens=1000, cached_input_tokens=600, cache_write_tokens=100, output_tokens=50)
    expected = (300 * 2.0 + 600 * 0.5 + 100 * 2.5 + 50 * 8.0) / 1e6
    assert call_cost(usage, P) == pytest.approx(expected)


def test_long_lived_cache_writes_at_their_own_rate():
    """Anthropic's 1-hour cache writes cost 2× input, the 5-minute ones 1.25× (the bundled catalog)."""
    sonnet = Catalog.bundled().get("claude-sonnet-4-5")
    assert sonnet is not None and sonnet.cache_write_long == 2 * sonnet.input
    usage = Usage(input_tokens=2010, cache_write_tokens=2000, cache_write_long_tokens=1500, output_tokens=5)
    expected = (10 * 3.0 + 500 * 3.75 + 1500 * 6.0 + 5 * 15.0) / 1e6
    assert call_cost(usage, sonnet) == pytest.approx(expected)
    assert call_cost(usage, P) == pytest.approx((10 * 2.0 + 2000 * 2.5 + 5 * 8.0) / 1e6)  # no long rate


def test_reasoning_priced_apart_only_when_the_model_says_so():
    usage = Usage(input_tokens=10, output_tokens=100, reasoning_tokens=60)
    assert call_cost(usage, P) == pytest.approx((10 * 2 + 100 * 8) / 1e6)
    priced = Price("r", "x", input=2.0, output=8.0, reasoning=4.0)
    assert call_cost(usage, priced) == pytest.approx((10 * 2 + 60 * 4 + 40 * 8) / 1e6)


def test_batch_discount_and_unknown_price():
    usage = Usage(input_tokens=1000, output_tokens=1000)
    batched = Price("b", "x", input=2.0, output=8.0, batch=0.5)
    assert call_cost(usage, batched, batch=True) == pytest.approx(call_cost(usage, batched) / 2)
    assert call_cost(usage, None) == 0.0


def test_bill_savings_add_up_to_baseline_minus_cost():
    usage = Usage(input_tokens=800, cached_input_tokens=400, output_tokens=100)
    baseline = Price("big", "x", input=10.0, output=30.0)
    money = bill(usage, P, baseline, original_input_tokens=1200)
    assert money.baseline == pytest.approx((1200 * 10 + 100 * 30) / 1e6)
    assert money.savings.total() == pytest.approx(money.baseline - money.cost)
    assert money.savings.compression == pytest.approx(400 * 10 / 1e6)
    assert money.savings.prompt_cache == pytest.approx(400 * (2.0 - 0.5) / 1e6)
    assert money.savings.routing > 0


def test_bill_same_model_no_levers_saves_nothing():
    usage = Usage(input_tokens=100, output_tokens=10)
    money = bill(usage, P, P)
    assert money.cost == money.baseline
    assert money.savings.total() == pytest.approx(0.0)


def test_bundled_catalog_has_required_models_and_provider_prefix_lookup():
    catalog = Catalog.bundled()
    for name in (
        "deepseek-v4-flash",
        "deepseek-reasoner",
        "deepseek-coder",
        "Qwen/Qwen3-8B",
        "Qwen/Qwen3-32B",
        "Qwen-MT-Turbo",
        "gpt-4o",
        "claude-sonnet-4-5",
        "gemini-2.5-flash",
        "mistral-large-latest",
    ):
        assert name in catalog
    assert catalog.get("openai/gpt-4o") == catalog.get("gpt-4o")
    families = {p.provider for p in catalog}
    assert {"openai", "anthropic", "google", "deepseek", "qwen", "mistral", "together", "groq"} <= families


def test_token_counter_offline():
    counter = TokenCounter()
    assert counter.count_text("hello world") == 2
    msgs = [{"role": "user", "content": [{"type": "text", "text": "hello"}, {"type": "image_url"}]}]
    assert counter.count_messages(msgs) == 3 + 3 + 1


def test_long_texts_are_counted_from_windows_close_to_the_exact_count():
    """Counting runs on the event loop: a 6.5 MB answer without usage took 5 s to count exactly and
    stalled every other client. Past 64,000 characters four windows are counted and scaled."""
    counter = TokenCounter()
    prose = "The quick brown fox jumps over the lazy dog; 42 sheep, naïve café déjà vu. " * 20
    code = "def f(x):\n    return {'k': [x ** 2 for x in range(10)]}\n" * 20
    for text in (prose * 60, (prose + code) * 200, prose * 100 + code * 100):
        exact = counter._exact(text)
        assert len(text) > 64_000 and abs(counter.count_text(text) - exact) <= 0.05 * exact
    short = prose * 10
    assert len(short) <= 64_000 and counter.count_text(short) == counter._exact(short)
