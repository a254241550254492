"""The settings of :func:`agentmem.open`: its arguments routed to the model of each concern.

An option is named once, in the model that declares it, so ``open(url, spin_us=0,
buffer_size=100, stm_steps=50)`` finds ``spin_us`` in :class:`RedisSettings`,
``buffer_size`` in :class:`DualWriteSettings` and ``stm_steps`` in
:class:`TierSettings`. Each concern is read with :func:`~agentmem.config.reader.read`
(arguments > the Redis URL's query > ``AGENTMEM_*`` > defaults).
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from typing import Any

from pydantic import BaseModel

from agentmem.config.reader import read, split_query
from agentmem.config.settings import (
    ArchiveSettings,
    DualWriteSettings,
    RedisSettings,
    Settings,
    StoreSettings,
    TierSettings,
)
from agentmem.errors import ConfigError

__all__ = ["GROUPS", "option_names", "read_store"]

GROUPS: dict[str, type[Settings]] = {"redis": RedisSettings, "archive": ArchiveSettings,
                                     "writer": DualWriteSettings, "tiers": TierSettings}
"""The concerns of :class:`StoreSettings`: field name -> model."""
_TOP = tuple(n for n in StoreSettings.model_fields if n not in GROUPS)


def option_names() -> dict[str, str]:
    """Every option :func:`agentmem.open` takes -> the concern that declares it."""
    out = dict.fromkeys(_TOP, "store")
    for group, model in GROUPS.items():
        out.update((n, group) for n in [*model.model_fields, *model.aliases])
    return out


def _set_fields(model: BaseModel | None) -> dict[str, Any]:
    """The fields a settings object was given explicitly (they count as arguments)."""
    if model is None:
        return {}
    return {n: getattr(model, n) for n in model.model_fields_set}


def _part(value: object, model: type[Settings], name: str) -> tuple[bool | None, dict[str, Any]]:
    """``tiers=`` / ``dual_write=``: on or off (None: unsaid) and the options it carries."""
    if value is None or isinstance(value, bool):
        return value, {}
    if isinstance(value, model):
        return True, _set_fields(value)
    if isinstance(value, Mapping):
        return True, dict(value)
    raise ConfigError(f"{name} must be a bool, a {model.__name__} or a dict of its options, "
                      f"got {type(value).__name__}")


def read_store(redis_url: str | None = None, *, archive_url: str | None = None,
               tiers: object = None, dual_write: object = None, failover: bool | None = None,
               settings: StoreSettings | None = None, env: Mapping[str, str] | None = None,
               **options: Any) -> StoreSettings:
    """The :class:`StoreSettings` of an :func:`agentmem.open` call (see its doc)."""
    environ = os.environ if env is None else env
    if settings is not None and not isinstance(settings, StoreSettings):
        raise ConfigError(f"settings must be a StoreSettings, got {type(settings).__name__}")
    given: dict[str, dict[str, Any]] = {g: _set_fields(getattr(settings, g, None))
                                        for g in GROUPS}
    top: dict[str, Any] = {n: getattr(settings, n) for n in _TOP
                           if settings is not None and n in settings.model_fields_set}
    use_tiers, tier_options = _part(tiers, TierSettings, "tiers")
    use_writer, writer_options = _part(dual_write, DualWriteSettings, "dual_write")
    given["tiers"].update(tier_options)
    given["writer"].update(writer_options)
    if failover is not None:
        if not isinstance(failover, bool):
            raise ConfigError(f"failover must be a bool, got {failover!r}")
        if "strict" in options:
            raise ConfigError("give failover or strict (failover=False is strict=True), "
                              "not both")
        given["writer"]["strict"] = not failover
    routes = option_names()
    for name, value in options.items():
        group = routes.get(name)
        if group is None:
            raise ConfigError(f"unknown option {name!r}; agentmem.open takes "
                              f"{', '.join(sorted(routes))}")
        target = top if group == "store" else given[group]
        target[GROUPS[group].aliases.get(name, name) if group != "store" else name] = value
    if redis_url is not None:
        top["redis_url"] = redis_url
    if archive_url is not None:
        given["archive"]["archive_url"] = archive_url
    if use_writer is not None:
        top["dual_write"] = use_writer
    head = read(StoreSettings, top, env=environ)
    url, query = head.redis_url, dict[str, str]()
    if url is not None:
        url, query = split_query(url, [*RedisSettings.model_fields, *RedisSettings.aliases])
    parts = {g: read(m, given[g], query=query if g == "redis" else None, env=environ)
             for g, m in GROUPS.items()}
    if use_tiers is not None:
        tiers_on = use_tiers
    elif "use_tiers" in head.model_fields_set:  # an option or $AGENTMEM_USE_TIERS
        tiers_on = head.use_tiers
    else:  # on when a tier option is set
        tiers_on = bool(parts["tiers"].model_fields_set)
    return StoreSettings.model_validate({
        **{n: getattr(head, n) for n in _TOP}, "redis_url": url, "use_tiers": tiers_on,
        **parts})
