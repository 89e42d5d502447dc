"""`tokenhub keys …`: the admin REST calls from a terminal (TOKENHUB_ADMIN_URL, TOKENHUB_ADMIN_TOKEN)."""

from __future__ import annotations

import argparse


def register(sub: argparse._SubParsersAction) -> None:  # type: ignore[type-arg]
    """Add the `keys` command group. (Being built: issue 4.)"""
