"""Provider prompt caching: stable prefixes, automatic Anthropic breakpoints, sticky routing."""
