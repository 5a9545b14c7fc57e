"""Routing: virtual models resolved by a rules router, a learned router or a quality-gated cascade.

Modules: config (the `routing:` section), signals/classifier/rules (task routing), features/learned/
train (learned router), gates/judge/learned_gate (QualityGate seam), cascade, stage (the plan Stage),
calibrate (thresholds for a target), build (config → stage).
"""

# `routing.config` subclasses `thrifty.config.Section` and `thrifty.config` imports it back: load the
# core config first whichever module is imported first.
import thrifty.config  # noqa: F401
