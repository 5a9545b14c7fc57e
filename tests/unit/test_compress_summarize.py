"""Model-based summary of system prompts given as content parts: applied when paid for, else not paid."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from thrifty.compress.base import Budget, TokenCache
from thrifty.compress.memo import Summary, SummaryStore
from thrifty.compress.summarize import Summarizer

TOKENS = TokenCache()
LONG = "\n\n".join(
    f"Rule {i}. Report crane {i} maintenance windows in UTC and never guess schedules you do not know."
    for i in range(40)
)
SHORT = "Harrow harbour assistant: crane maintenance windows in UTC; never guess."


class Writer:
    def __init__(self) -> None:
        self.sources: list[str] = []

    async def __call__(self, text: str, target: int, call: Any) -> Summary:
        self.sources.append(text)
        return Summary(SHORT, TOKENS.text(text), TOKENS.text(SHORT), "mini", 0.001)


def summarizer(tmp_path: Path) -> tuple[Summarizer, Writer]:
    writer = Writer()
    return Summarizer(
        TOKENS, SummaryStore(tmp_path / "memo.db"), writer, model="mini", min_tokens=200
    ), writer


def body(system: Any) -> dict[str, Any]:
    return {
        "model": "m",
        "messages": [{"role": "system", "content": system}, {"role": "user", "content": "Hi"}],
    }


async def test_a_system_prompt_of_text_parts_gets_the_summary_it_paid_for(tmp_path):
    s, writer = summarizer(tmp_path)
    parts = [{"type": "text", "text": LONG}, {"type": "text", "text": "Also answer in English."}]
    outs = [await s.compress(body(parts), Budget(tokens=40)) for _ in range(2)]
    assert len(writer.sources) == 1  # paid once
    for out, report in outs:
        system = out["messages"][0]["content"]
        assert [p["text"] for p in system] == [SHORT]
        assert report.tokens_after < report.tokens_before
    assert outs[0][0]["messages"][0] == outs[1][0]["messages"][0]  # byte-identical across requests


async def test_a_part_carrying_cache_control_keeps_it_on_the_summary(tmp_path):
    s, _ = summarizer(tmp_path)
    marker = {"type": "ephemeral"}
    parts = [{"type": "text", "text": LONG}, {"type": "text", "text": "Be brief.", "cache_control": marker}]
    out, _ = await s.compress(body(parts), Budget(tokens=40))
    assert out["messages"][0]["content"] == [{"type": "text", "text": SHORT, "cache_control": marker}]


async def test_a_system_prompt_with_non_text_parts_is_not_summarised_nor_paid_for(tmp_path):
    s, writer = summarizer(tmp_path)
    parts = [{"type": "text", "text": LONG}, {"type": "image_url", "image_url": {"url": "https://x/y.png"}}]
    request = body(parts)
    out, report = await s.compress(request, Budget(tokens=40))
    assert writer.sources == [] and out is request and report.tokens_after == report.tokens_before


async def test_a_plain_string_system_prompt_is_still_summarised(tmp_path):
    s, writer = summarizer(tmp_path)
    out, _ = await s.compress(body(LONG), Budget(tokens=40))
    assert out["messages"][0]["content"] == SHORT and writer.sources == [LONG]
