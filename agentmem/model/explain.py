"""pydantic's validation errors in agentmem's words (for :class:`~agentmem.errors.InvalidInput`)."""

from __future__ import annotations

from pydantic import ValidationError

from agentmem.model.fields import check_id

__all__ = ["explain"]


def explain(exc: ValidationError) -> str:
    """pydantic's message, with the id rule spelled out where an id broke it."""
    lines = []
    for err in exc.errors():
        where = ".".join(str(p) for p in err["loc"])
        msg = err["msg"]
        if err["type"] == "string_pattern_mismatch":
            try:
                check_id(err["input"], what=where)
            except ValueError as why:
                msg = str(why)
            else:
                if "-" in str(err["input"]) or "." in str(err["input"]):
                    msg = (f"{where} {err['input']!r} contains '-' or '.', which separate the "
                           "parts of action ids")
        lines.append(f"{where}: {msg}")
    return f"invalid {exc.title}: " + "; ".join(lines)
