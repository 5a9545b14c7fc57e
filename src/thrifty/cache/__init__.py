"""Exact and semantic answer caching, scoped per tenant, namespace and request shape.

`keys` builds cache keys, `exact` and `semantic` look answers up, `backends/` store them (SQLite by
default; Redis and Postgres+pgvector for replicas), and `stage.CacheStage` plugs it all into the
pipeline. See docs/caching.md.
"""
