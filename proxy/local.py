"""`tokenhub local`: a one-command local stack for a newcomer."""

from __future__ import annotations

import argparse


def register(sub: argparse._SubParsersAction) -> None:  # type: ignore[type-arg]
    """Add the `local` command. (Being built: issue 5.)"""
