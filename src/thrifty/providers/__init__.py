"""Providers: translation between the OpenAI wire shape and each provider's API."""
