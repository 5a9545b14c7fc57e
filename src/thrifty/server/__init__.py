"""The HTTP server: OpenAI-compatible endpoints in front of a Gateway."""
