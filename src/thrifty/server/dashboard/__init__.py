"""The `/dashboard` web page and its JSON API, served by the gateway."""
