"""Per-key limits and budgets, enforced for the whole fleet through Redis (see limiter.py).

Import the submodules directly: this package imports nothing itself, so `proxy.config` can take its
section type from `proxy.limits.settings` without an import cycle.
"""
