"""Layout 1: the specification's key layout (the base; nothing to move).

A server without ``agentmem:layout`` holds this layout: the data written by an
agentmem of layout 1 or by the specification's own code.
"""

from __future__ import annotations

from agentmem.migrations.redis import Context

revision = "0001"
down_revision: str | None = None
description = "layout 1: the specification's keys (the base revision)"
layout = 1


def upgrade(ctx: Context) -> None:
    """Nothing: every server starts here."""


def downgrade(ctx: Context) -> None:
    """Nothing: there is no revision below the base."""
