"""Whether two key templates can render one key (pure; imports nothing of agentmem).

A key field's value never holds ``:`` (``fields.FORBIDDEN``) and is never empty, so a
key has as many ``:``-separated segments as its template, and two templates name one
key only if every pair of their segments can be equal. :func:`may_coincide` answers
conservatively: ``False`` only when no values make the keys equal. ``declare`` uses it
to refuse a declaration whose record key can be one of its index keys (the write would
stop half done at a key of the wrong type), the column writer to keep two index keys
that may coincide in the row form.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from collections.abc import Set as AbstractSet

__all__ = ["Part", "may_coincide", "segments"]

Part = tuple[str, str]
"""A template part: ``("L", literal text)`` or ``("F", field name)``."""


def segments(parts: Sequence[Part]) -> list[list[Part]]:
    """A template's parts cut at every ``:`` of its literal text."""
    out: list[list[Part]] = [[]]
    for kind, v in parts:
        if kind == "F":
            out[-1].append((kind, v))
            continue
        for i, piece in enumerate(v.split(":")):
            if i:
                out.append([])
            if piece:
                out[-1].append(("L", piece))
    return out


def _pattern(seg: Sequence[Part], ints: AbstractSet[str]) -> str:
    return "".join(re.escape(v) if k == "L" else ("-?[0-9]+" if v in ints else "[^:]+")
                   for k, v in seg)


def _literal(seg: Sequence[Part]) -> str | None:
    return "".join(v for _, v in seg) if all(k == "L" for k, _ in seg) else None


def _ends(seg: Sequence[Part]) -> tuple[str, str]:
    """The literal text before the first field and after the last one."""
    head = ""
    for k, v in seg:
        if k != "L":
            break
        head += v
    tail = ""
    for k, v in reversed(seg):
        if k != "L":
            break
        tail = v + tail
    return head, tail


def _segment_may_equal(a: Sequence[Part], b: Sequence[Part], ints: AbstractSet[str]) -> bool:
    la, lb = _literal(a), _literal(b)
    if la is not None and lb is not None:
        return la == lb
    if la is not None:
        return re.fullmatch(_pattern(b, ints), la) is not None
    if lb is not None:
        return re.fullmatch(_pattern(a, ints), lb) is not None
    (ha, ta), (hb, tb) = _ends(a), _ends(b)
    n, m = min(len(ha), len(hb)), min(len(ta), len(tb))
    return ha[:n] == hb[:n] and (m == 0 or ta[-m:] == tb[-m:])


def may_coincide(a: Sequence[Part], b: Sequence[Part], ints: AbstractSet[str]) -> bool:
    """Whether templates ``a`` and ``b`` (their parts) may render one key; ``ints``
    names the fields whose values are ints (rendered as digits)."""
    sa, sb = segments(a), segments(b)
    return len(sa) == len(sb) and all(
        _segment_may_equal(x, y, ints) for x, y in zip(sa, sb, strict=True))
