"""Who is calling: keys, budgets, rate limits."""
