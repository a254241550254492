"""The options of a connect function, read through :class:`agentmem.config.RedisSettings`.

One reading for :func:`~agentmem.backends.redis.connect`, ``connect_async`` and
:func:`~agentmem.backends.cluster.connect_cluster`: the keywords passed, then the
URL's query, then ``AGENTMEM_*`` variables, then the defaults; checked by the
settings model (:class:`~agentmem.errors.ConfigError` naming the option).
"""

from __future__ import annotations

from typing import Any

from agentmem.config import RedisSettings, read, split_query
from agentmem.errors import ConfigError
from agentmem.plans.keyspace import layout

__all__ = ["check_settings", "options_of", "read_settings"]


def read_settings(url: Any, given: dict[str, Any], pool_options: dict[str, Any], *,
                  base: dict[str, Any] | None = None) -> tuple[Any, RedisSettings]:
    """``url`` without agentmem's query parameters, and the settings of a store:
    ``given`` keywords > the URL's query > ``AGENTMEM_*`` > ``base`` > defaults.
    Pool options that are settings (timeouts, ``max_connections``) are moved from
    ``pool_options`` into ``given``."""
    fields = set(RedisSettings.model_fields) | set(RedisSettings.aliases)
    for name in list(pool_options):
        if name in RedisSettings.model_fields:
            given[name] = pool_options.pop(name)
    url, query = split_query(url, fields) if isinstance(url, str) else (url, {})
    return url, read(RedisSettings, given, query=query, base=base)


def check_settings(settings: RedisSettings) -> dict[str, Any]:
    """The store options of ``settings``, checked against the known key layouts."""
    if not isinstance(settings, RedisSettings):
        raise ConfigError(f"settings must be a RedisSettings, got {type(settings).__name__}")
    layout(settings.layout_version)  # unknown versions fail here, before connecting
    return settings.store_options()


def options_of(url: Any, options: dict[str, Any], settings: RedisSettings | None, *,
               base: dict[str, Any] | None = None
               ) -> tuple[Any, RedisSettings, dict[str, Any]]:
    """The settings of a ``connect``-like call and the options left for the client's
    connection pool: the keywords named like a :class:`~agentmem.RedisSettings` field
    (the one declaration of the store options) are settings, the others pool options.
    ``settings`` itself when given (and no settings keyword), else
    :func:`read_settings`. Returns ``(url, settings, pool options)``."""
    pool = dict(options)
    given = {k: pool.pop(k) for k in list(pool) if k in RedisSettings.model_fields}
    if settings is None:
        url, s = read_settings(url, given, pool, base=base)
        return url, s, pool
    if given:
        raise ConfigError(f"pass either settings or {sorted(given)}, not both")
    return url, settings, pool
