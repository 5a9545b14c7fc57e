"""Prompt compression: fewer input tokens per answer (lossless normalisation, extractive, memoised summary).

See DESIGN.md in this folder for the modules and the prefix rule.
"""

# `thrifty.config` imports `thrifty.compress.settings` while it is being built; importing it first here
# makes `import thrifty.compress.settings` work on its own too (config is then complete before it).
import thrifty.config  # noqa: F401
