"""The ledger: a durable, append-only record of every call and its costs."""
