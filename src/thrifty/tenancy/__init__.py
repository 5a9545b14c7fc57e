"""Who is calling: virtual keys, budgets, rate limits, and the shared state replicas use for them."""

# thrifty.config imports our settings section once its Section base exists; loading the config
# module first keeps that order whichever tenancy module is imported first.
import thrifty.config  # noqa: F401
