"""Reading archive rows back: the select that joins ``agent_actions`` with its
side rows, decoding a row into an :class:`~agentmem.model.records.Action`, and
SQLAlchemy errors as agentmem's.
"""

from __future__ import annotations

import json
from typing import Any

import numpy as np
from pydantic import ValidationError
from sqlalchemy import select
from sqlalchemy.engine import RowMapping
from sqlalchemy.exc import DBAPIError, SQLAlchemyError
from sqlalchemy.sql import Select

from agentmem.backends.sqltables import (
    OPTIONAL_ACTION_COLUMNS,
    REQUIRED_ACTION_COLUMNS,
    action_extras,
    agent_actions,
)
from agentmem.errors import BackendError, DecodeError, Unavailable
from agentmem.model.records import Action

__all__ = ["backend_error", "decode_row", "select_actions"]


def select_actions(columns: frozenset[str]) -> Select[Any]:
    """``agent_actions`` rows (the ``columns`` the table has) outer-joined with their
    side rows, labelled as :func:`decode_row` reads them; no filter, no order."""
    cols = [agent_actions.c[name] for name in (*REQUIRED_ACTION_COLUMNS,
                                               *OPTIONAL_ACTION_COLUMNS)
            if name in columns]
    side = [action_extras.c[name] for name in (
        "action_id", "position_x", "position_y", "embedding", "stored_at",
        "details_full", "extra_fields")]
    return (
        select(*cols, *[c.label(f"x_{c.name}") for c in side])
        .select_from(agent_actions.outerjoin(
            action_extras, action_extras.c.row_id == agent_actions.c.action_id))
    )


def decode_row(row: RowMapping) -> Action:
    try:
        full = row["x_details_full"]
        text = full if full is not None else row.get("details")
        details = None if text is None else json.loads(text)
        fields: dict[str, Any] = {
            "agent_id": row["agent_id"],
            "simulation_id": row["simulation_id"],
            "step_number": row["step_number"],
            "action_type": row["action_type"],
            "action_id": row["x_action_id"],
            "details": details,
            "stored_at": row["x_stored_at"],
        }
        for name in OPTIONAL_ACTION_COLUMNS:
            if name != "details" and name in row:
                fields[name] = row[name]
        if row["x_position_x"] is not None and row["x_position_y"] is not None:
            fields["position"] = (row["x_position_x"], row["x_position_y"])
        if row["x_embedding"] is not None:
            fields["embedding"] = np.frombuffer(bytes(row["x_embedding"]), dtype="<f4").astype(
                np.float32)
        if row["x_extra_fields"] is not None:  # last: it also keeps the -0.0 SQLite drops
            fields.update(json.loads(row["x_extra_fields"]))
        return Action.model_validate(fields)
    except (ValidationError, ValueError, TypeError) as exc:
        raise DecodeError(
            f"agent_actions row {row['action_id']} does not decode into an Action: {exc}"
        ) from None


def backend_error(exc: SQLAlchemyError) -> BackendError:
    if isinstance(exc, DBAPIError) and exc.connection_invalidated:
        return Unavailable(f"the database connection was lost: {exc.orig}")
    if isinstance(exc, DBAPIError) and exc.orig is not None:
        text = str(exc.orig).strip()
        if "could not connect" in text or "Connection refused" in text:
            return Unavailable(f"the database cannot be reached: {text}")
        return BackendError(f"the database refused the operation: {text}")
    return BackendError(str(exc))
