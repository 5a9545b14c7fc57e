"""Test helpers: a fake LLM provider speaking the OpenAI and Anthropic wire formats."""
