"""Write ``constraints.txt``: the tested versions of everything ``.[dev]`` installs.

    python tools/constraints.py          # rewrite constraints.txt from this environment
    python tools/constraints.py --check  # exit 1 if it differs from this environment

Run it in an environment where ``pip install -e ".[dev]"`` passed ``.ci/run``. It
walks agentmem's requirements (with the ``dev`` extra, and the extras those
requirements ask for) through the installed distributions and pins each to the
version installed here; nothing that agentmem does not pull in is pinned. CI
installs with ``PIP_CONSTRAINT=constraints.txt`` so that a release made
yesterday cannot change what it tests; the README's install command stays
``pip install -e ".[dev]"``.
"""

from __future__ import annotations

import argparse
import importlib.metadata as md
import re
import sys
from pathlib import Path

from packaging.markers import default_environment
from packaging.requirements import Requirement
from packaging.utils import canonicalize_name

ROOT = Path(__file__).resolve().parent.parent
OUT = ROOT / "constraints.txt"
HEADER = """\
# Tested versions of everything `pip install -e ".[dev]"` installs (Python 3.11).
# Used by .ci/run (PIP_CONSTRAINT); written by `python tools/constraints.py`.
"""


def closure(root: str, extras: set[str]) -> dict[str, str]:
    """Installed name -> version for ``root[extras]`` and everything it requires."""
    out: dict[str, str] = {}
    todo: list[tuple[str, frozenset[str]]] = [(root, frozenset(extras))]
    seen: set[tuple[str, frozenset[str]]] = set()
    while todo:
        name, wanted = todo.pop()
        key = (canonicalize_name(name), wanted)
        if key in seen:
            continue
        seen.add(key)
        try:
            dist = md.distribution(name)
        except md.PackageNotFoundError:
            continue  # a requirement for another platform, not installed here
        cname = canonicalize_name(dist.metadata["Name"])
        if cname != canonicalize_name(root):
            out[cname] = dist.version
        for line in dist.requires or []:
            req = Requirement(line)
            if req.marker is not None:
                env = {**default_environment(), "extra": ""}
                ok = req.marker.evaluate(env) or any(
                    req.marker.evaluate({**env, "extra": e}) for e in wanted)
                if not ok:
                    continue
            todo.append((req.name, frozenset(req.extras)))
    return out


def render() -> str:
    pins = closure("agentmem", {"dev"})
    lines = [f"{name}=={version}" for name, version in sorted(pins.items())]
    return HEADER + "\n".join(lines) + "\n"


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--check", action="store_true",
                        help="compare with constraints.txt instead of writing it")
    args = parser.parse_args()
    text = render()
    if args.check:
        current = OUT.read_text() if OUT.exists() else ""
        strip = lambda s: [ln for ln in s.splitlines() if not re.match(r"\s*(#|$)", ln)]  # noqa: E731
        if strip(current) != strip(text):
            pinned, here = set(strip(current)), set(strip(text))
            print("constraints.txt differs from this environment; run python tools/constraints.py")
            for line in sorted(pinned - here):
                print(f"  pinned, not installed so: {line}")
            for line in sorted(here - pinned):
                print(f"  installed, not pinned so: {line}")
            return 1
        return 0
    OUT.write_text(text)
    print(f"wrote {OUT.relative_to(ROOT)}: {len(text.splitlines()) - 2} pins")
    return 0


if __name__ == "__main__":
    sys.exit(main())
