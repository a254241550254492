"""Filling a settings model from arguments, a URL's query and the environment.

Precedence: keyword arguments, then URL query parameters, then ``AGENTMEM_<NAME>``
environment variables, then the model's defaults. Arguments are validated
strictly (``True`` is not an int, ``"30"`` not a number); the text of URLs and
the environment is converted first (``"0"`` -> 0, ``"true"`` -> True, ``""`` or
``"none"`` -> None). Every error is a :class:`~agentmem.errors.ConfigError` that
names the option and where its value came from.
"""

from __future__ import annotations

import os
from collections.abc import Iterable, Mapping
from typing import Any, TypeVar
from urllib.parse import parse_qsl, urlencode, urlsplit, urlunsplit

from pydantic import ValidationError

from agentmem.config.settings import Settings
from agentmem.errors import ConfigError

__all__ = ["ENV_PREFIX", "env_name", "read", "split_query"]

S = TypeVar("S", bound=Settings)

ENV_PREFIX = "AGENTMEM_"
_NONE = ("", "none", "null")


def env_name(name: str) -> str:
    """The environment variable of option ``name``: ``AGENTMEM_SPIN_US``."""
    return ENV_PREFIX + name.upper()


def split_query(url: str, names: Iterable[str]) -> tuple[str, dict[str, str]]:
    """``url`` without the query parameters in ``names``, and those parameters.

    The other parameters stay in the URL (redis-py reads them)."""
    wanted = set(names)
    if "?" not in url:
        return url, {}
    parts = urlsplit(url)
    pairs = parse_qsl(parts.query, keep_blank_values=True)
    mine = {k: v for k, v in pairs if k in wanted}
    if not mine:
        return url, {}
    rest = urlencode([(k, v) for k, v in pairs if k not in wanted])
    return urlunsplit(parts._replace(query=rest)), mine


def _canonical(model: type[Settings], values: Mapping[str, str]) -> dict[str, str]:
    return {model.aliases.get(k, k): v for k, v in values.items()}


def _from_env(model: type[Settings], env: Mapping[str, str]) -> dict[str, tuple[str, str]]:
    """field -> (text, variable) for the fields the environment sets."""
    out: dict[str, tuple[str, str]] = {}
    for alias, field in model.aliases.items():
        if env_name(alias) in env:
            out[field] = (env[env_name(alias)], env_name(alias))
    for field, info in model.model_fields.items():
        var = env_name(field)
        nested = isinstance(info.annotation, type) and issubclass(info.annotation, Settings)
        if var in env and not nested:  # a concern of StoreSettings has variables of its own
            out[field] = (env[var], var)
    return out


def _message(exc: ValidationError, sources: Mapping[str, str]) -> str:
    parts = []
    for err in exc.errors():
        name = ".".join(str(x) for x in err["loc"] if not isinstance(x, int)) or "value"
        field = str(err["loc"][0]) if err["loc"] else name
        where = f" (from {sources[field]})" if field in sources else ""
        if err["type"] == "extra_forbidden":
            parts.append(f"unknown option {name!r}{where}")
        else:
            parts.append(f"{name}{where}: {err['msg']}, got {err['input']!r}")
    return "; ".join(parts)


def _validate(model: type[S], values: Mapping[str, Any], *, strict: bool,
              sources: Mapping[str, str]) -> S:
    try:
        return model.model_validate(dict(values), strict=strict)
    except ValidationError as exc:
        raise ConfigError(_message(exc, sources)) from None


def read(model: type[S], given: Mapping[str, Any] | None = None, *,
         query: Mapping[str, str] | None = None, env: Mapping[str, str] | None = None,
         base: Mapping[str, Any] | None = None) -> S:
    """A ``model`` from ``given`` (arguments) > ``query`` (a URL's parameters, by field
    name or alias) > ``env`` (``os.environ`` unless given; ``{}`` reads none) > ``base``
    (defaults of the caller) > the model's defaults."""
    environ = os.environ if env is None else env
    text: dict[str, str] = {}
    sources: dict[str, str] = {}
    for field, (value, var) in _from_env(model, environ).items():
        text[field], sources[field] = value, "$" + var
    for field, value in _canonical(model, query or {}).items():
        text[field], sources[field] = value, "the URL query"
    typed: dict[str, Any] = dict(base or {})
    if text:
        raw = {k: None if v.strip().lower() in _NONE else v for k, v in text.items()}
        parsed = _validate(model, raw, strict=False, sources=sources)
        typed.update((k, getattr(parsed, k)) for k in raw)
    given = dict(given or {})
    for name in given:
        sources.pop(name, None)
    return _validate(model, {**typed, **given}, strict=True, sources=sources)
