"""griffe extension for the API reference: Sphinx roles in docstrings become code.

agentmem's docstrings are reStructuredText-like: ``code`` in double backticks
(which Markdown renders as code too) and roles such as :class:`Archive` or
:func:`~agentmem.tiers.Tiers.maintain`. Markdown has no roles, so this rewrites
each role to a code span before the docstring is rendered: the role name is
dropped, and a leading ``~`` keeps only the last dotted component, as Sphinx
does. Loaded by mkdocstrings (``extensions`` in ``mkdocs.yml``).
"""

from __future__ import annotations

import re
from typing import Any

import griffe

ROLE = re.compile(r":(?:py:)?(?:class|func|meth|mod|attr|data|exc|obj|const):`(~?)([^`]+)`")


def _code(match: re.Match[str]) -> str:
    short, target = match.groups()
    return f"`{target.rsplit('.', 1)[-1] if short else target}`"


def strip_roles(text: str) -> str:
    """``:class:`~a.b.C``` -> ```C```; ``:func:`f``` -> ```f```."""
    return ROLE.sub(_code, text)


class SphinxRoles(griffe.Extension):
    def on_object(self, *, obj: griffe.Object, loader: griffe.GriffeLoader,
                  **kwargs: Any) -> None:
        if obj.docstring is not None:
            obj.docstring.value = strip_roles(obj.docstring.value)
