"""The prefix rule: compression never rewrites a long stable prefix per request.

Providers discount input prefixes they have seen recently (OpenAI and DeepSeek automatically,
Anthropic at `cache_control` breakpoints) — often a bigger saving than compression itself — but only
when the prefix is byte-identical to the one they cached. So every compressor in this package obeys:

    message i of the output depends only on messages 0..i of the input and on configuration.

Consequences, by compressor:

- normalisation is a pure function of each message (duplicate blocks are dropped only after their
  first occurrence, which is earlier): the same system prompt always normalises to the same bytes;
- extraction touches only user messages and cuts each one against the question inside that same
  message — never against a later one — and leaves system/developer messages alone;
- model-based summary replaces a long system/developer message with its memoised rewrite, keyed by
  the content hash: every request carrying that message gets the same bytes until the source changes.

`first_unstable` checks the rule for any body → body function; the unit tests run it on each
compressor over multi-turn conversations.
"""

from __future__ import annotations

from collections.abc import Callable

from thrifty.types import Body


def first_unstable(run: Callable[[Body], Body], body: Body) -> int | None:
    """The first message index whose output changes when later messages are added, or None.

    Runs `run` on every prefix of `body["messages"]` and compares each output prefix with the
    output for the whole conversation.
    """
    messages = body.get("messages") or []
    full = run(body).get("messages") or []
    for k in range(1, len(messages)):
        part = run({**body, "messages": messages[:k]}).get("messages") or []
        for i in range(k):
            if part[i] != full[i]:
                return i
    return None
