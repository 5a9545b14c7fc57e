"""Request batching: live micro-batches (coalesce) and provider batch APIs (jobs)."""
