"""Redis and Valkey URLs: which schemes a store takes and how a URL is checked.

May import: ``agentmem.errors``.
"""

from __future__ import annotations

from typing import Any
from urllib.parse import parse_qs, urlsplit

from agentmem.errors import ConfigError

__all__ = ["SCHEMES", "parse_url"]

SCHEMES = ("redis", "rediss", "unix", "valkey", "valkeys")


def parse_url(url: str) -> tuple[str, dict[str, Any]]:
    """Check a redis-py URL; return it normalised (``valkey://`` -> ``redis://``)."""
    if not isinstance(url, str) or "://" not in url:
        raise ConfigError(f"not a Redis URL: {url!r} (expected redis://host:port/db)")
    try:
        parts = urlsplit(url)
        port = parts.port
    except ValueError as exc:
        raise ConfigError(f"malformed Redis URL {url!r}: {exc}") from None
    scheme = parts.scheme.lower()
    if scheme not in SCHEMES:
        raise ConfigError(f"unsupported URL scheme {parts.scheme!r}; use one of {SCHEMES}")
    if scheme in ("valkey", "valkeys"):
        plain = "redis://" if scheme == "valkey" else "rediss://"
        url = url.replace(parts.scheme + "://", plain, 1)
    if scheme == "unix":
        if not parts.path:
            raise ConfigError(f"unix URL {url!r} has no socket path")
    else:
        if not parts.hostname:
            raise ConfigError(f"Redis URL {url!r} has no host")
        if port is not None and not 0 < port < 65536:
            raise ConfigError(f"Redis URL {url!r} has a bad port")
        db = parts.path.lstrip("/")
        if db and not db.isdigit():
            raise ConfigError(f"Redis URL {url!r}: database must be a number, got {db!r}")
    query = parse_qs(parts.query)
    if query.get("decode_responses", ["false"])[0].lower() in ("1", "true", "yes"):
        raise ConfigError("decode_responses must be off: embeddings are raw bytes")
    return url, {}
