"""A server started under a collating locale answers as one started under C.

Redis and Valkey take ``LC_COLLATE`` from the environment they start in, and Lua's
``<`` on strings is ``strcoll``: under ``en_US.UTF-8``, ``'a-b' < 'aa'`` is false and
``'B' < 'a'`` too. The scripts that order ids (pages and their cursors, the step sets
sorted by id, ties by id in ``near``, ``history``, ``read_window``, ``members`` with
``order_by`` and the IM eviction's ranking) compare them in byte order whatever the
locale (``lib/bytewise.lua``). Before, the en_US server's pages of a timeline with ties
lost 9 of 19 actions and repeated some, and ``at_step`` listed another order.

Each test runs one scenario on two servers of one kind, one started with
``LC_ALL=C`` and one with ``LC_ALL=en_US.UTF-8`` (a locale built here with
``localedef``; skipped where the machine has no locale sources), and compares every
answer. It also checks the premise: the second server's Lua does collate.
"""

from __future__ import annotations

import shutil
import subprocess
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import redis

import agentmem
from agentmem import Action
from agentmem.search.sequences import read_window
from agentmem.servers.local import LocalServer, find_binary
from agentmem.tiers.maintenance import TierPolicy, Tiers

TYPES = ["move", "Move", "_idle", "aa", "a_b", "B", "ab", "\u00e7", "\u00e9", "\u03a9",
         "\U0001f600"]
AGENT = "a-1"


@pytest.fixture(scope="module")
def en_us(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A directory holding the en_US.UTF-8 locale and a forced ja_JP.ISO-8859-1 build
    (for ``LOCPATH``): the second keeps ASCII in byte order, not its high bytes."""
    if shutil.which("localedef") is None or not Path("/usr/share/i18n/locales/en_US").exists():
        pytest.skip("no localedef or no locale sources on this machine")
    where = tmp_path_factory.mktemp("locales")
    subprocess.run(["localedef", "-i", "en_US", "-f", "UTF-8", str(where / "en_US.UTF-8")],
                   check=True, capture_output=True)
    # -c: built despite its warnings (exit 1 then), as review 121 built it
    subprocess.run(["localedef", "-c", "-i", "ja_JP", "-f", "ISO-8859-1",
                    str(where / "ja_JP.ISO-8859-1")], check=False, capture_output=True)
    if not (where / "ja_JP.ISO-8859-1").exists():
        pytest.skip("localedef could not build ja_JP.ISO-8859-1 here")
    return where


def _started(kind: str, env: dict[str, str]) -> LocalServer:
    return LocalServer(kind, env=env).start()  # type: ignore[arg-type]


@pytest.fixture(params=[(k, loc) for k in ("redis", "valkey")
                        for loc in ("en_US.UTF-8", "ja_JP.ISO-8859-1")],
                ids=lambda p: "-".join(p))
def pair(request: pytest.FixtureRequest, en_us: Path) -> Iterator[tuple[str, str]]:
    """The URLs of a server of one kind started under C, and one under a collating
    locale."""
    kind, loc = request.param
    if find_binary(kind) is None:
        pytest.skip(f"no {kind} server binary")
    c = _started(kind, {"LC_ALL": "C"})
    try:
        e = _started(kind, {"LC_ALL": loc, "LOCPATH": str(en_us)})
        try:
            yield c.url, e.url
        finally:
            e.close()
    finally:
        c.close()


def _collates(url: str) -> bool:
    """Whether the server's Lua orders two strings otherwise than their bytes ('a-b'
    after 'aa', or the byte 0xd0 before 0x93)."""
    client = redis.Redis.from_url(url)
    try:  # false -> nil
        return client.eval("return ('a-b' < 'aa') and ('\\147' < '\\208')", 0) is None
    finally:
        client.close()


def _probe(url: str) -> bool:
    """lib/bytewise.lua's verdict on the server: whether its < is byte order."""
    lib = (Path(agentmem.__file__).parent / "lua" / "src" / "lib" / "bytewise.lua").read_text()
    client = redis.Redis.from_url(url)
    try:
        return client.eval(lib + "\nreturn BYTEWISE and 1 or 0", 0) == 1
    finally:
        client.close()


def _ids(items: Any) -> list[str]:
    return [str(getattr(x, "record", x).action_id) for x in items]


def _pages(mem: agentmem.Memory, query: str, *args: Any, size: int) -> list[str]:
    got: list[str] = []
    cursor = None
    while True:
        page = mem.actions.page(query, *args, cursor=cursor, size=size)
        got += _ids(page.items)
        cursor = page.cursor
        if cursor is None:
            return got


def _answers(url: str, layout: int) -> dict[str, Any]:
    """Every ordering answer of one scenario: actions of one agent whose ids tie on
    step, reward, position and target and differ in punctuation and case."""
    mem = agentmem.connect(url, layout_version=layout, spin_us=0)
    try:
        acts = [Action(agent_id=AGENT, simulation_id="s", step_number=step, action_type=t,
                       reward=0.5, action_target_id="t", position=(1.0, 2.0))
                for step in range(4) for t in TYPES]
        mem.actions.add_many(acts)
        mem.actions.add_many([Action(agent_id=AGENT, simulation_id="s", step_number=1,
                                     action_type="move", reward=0.5, action_target_id="t",
                                     position=(1.0, 2.0))])  # a-1-1-move.1
        out: dict[str, Any] = {}
        for size in (1, 2, 5):
            for query, args in [("timeline", (AGENT,)), ("recent", (AGENT,)),
                                ("high_reward", (AGENT,)), ("by_target", (AGENT, "t")),
                                ("at_step", ("s", 1))]:
                out[f"page {query} {size}"] = _pages(mem, query, *args, size=size)
        out["at_step"] = _ids(mem.actions.at_step("s", 1))
        out["at_step 3"] = _ids(mem.actions.at_step("s", 2, limit=3))
        out["near"] = _ids(mem.actions.near(AGENT, 1.0, 2.0, 1.0))
        out["near 4"] = _ids(mem.actions.near(AGENT, 1.0, 2.0, 1.0, limit=4))
        if layout < 4:  # (layout 4's targets are a sorted index: members refuses it)
            out["members"] = _ids(mem.actions.members(
                "targets", order_by="rewards", agent_id=AGENT, action_target_id="t", limit=5))
        Tiers(mem, TierPolicy(stm_steps=2)).maintain([AGENT])  # steps 0-1 -> IM
        out["history"] = _ids(mem.actions.history(AGENT))
        out["history newest 5"] = _ids(mem.actions.history(AGENT, newest_first=True, limit=5))
        out["read_window"] = read_window(mem, AGENT, tiers="all").ids
        out["read_window 5"] = read_window(mem, AGENT, tiers="all", limit=5).ids
        # over an IM capacity of 10, the lowest ranked leave: ties (step, importance)
        # by id
        Tiers(mem, TierPolicy(stm_steps=2, im_capacity=10)).maintain([AGENT])
        out["im after eviction"] = _ids(a for a in mem.actions.history(AGENT)
                                        if type(a).__name__ == "IMAction")
        return out
    finally:
        mem.close()


@pytest.mark.parametrize("layout", [1, 4])
def test_a_server_under_a_collating_locale_answers_as_one_under_c(
        pair: tuple[str, str], layout: int) -> None:
    c_url, en_url = pair
    assert not _collates(c_url)
    assert _collates(en_url)  # the premise: without it this test proves nothing
    assert (_probe(c_url), _probe(en_url)) == (True, False)
    want = _answers(c_url, layout)
    got = _answers(en_url, layout)
    # the C server's answers are in byte order (ids as str: code point order is UTF-8's)
    assert want["page timeline 1"] == sorted(want["page timeline 1"],
                                             key=lambda i: (int(i.split("-")[2]), i))
    assert len(want["page timeline 1"]) == 4 * len(TYPES) + 1
    assert want["at_step"] == sorted(want["at_step"])
    assert want["near"] == sorted(want["near"])
    assert {k: v for k, v in got.items() if v != want[k]} == {}


def test_servers_agentmem_starts_compare_bytes_whatever_its_own_locale(
        en_us: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """The embedded server and the test servers (``LocalServer``) start under
    ``LC_ALL=C`` unless told otherwise: a process running under en_US.UTF-8 starts
    servers whose Lua compares bytes (the scripts' fast path)."""
    monkeypatch.setenv("LOCPATH", str(en_us))
    monkeypatch.setenv("LC_ALL", "en_US.UTF-8")
    kind = "valkey" if find_binary("valkey") is not None else "redis"
    server = LocalServer(kind).start()  # type: ignore[arg-type]
    try:
        assert not _collates(server.url)
    finally:
        server.close()
    told = LocalServer(kind, env={"LC_ALL": "en_US.UTF-8"}).start()  # type: ignore[arg-type]
    try:
        assert _collates(told.url)  # the premise: the environment would collate
    finally:
        told.close()
    other = LocalServer(kind, env={"X_AGENTMEM": "1"}).start()  # type: ignore[arg-type]
    try:
        assert not _collates(other.url)  # other variables keep LC_ALL=C
    finally:
        other.close()


def test_the_probe_takes_c_utf8_for_byte_order(en_us: Path) -> None:
    """C.UTF-8 (glibc's, built in) collates by code point, which is byte order: the
    scripts' fast path."""
    kind = "valkey" if find_binary("valkey") is not None else "redis"
    server = LocalServer(kind, env={"LC_ALL": "C.UTF-8"}).start()  # type: ignore[arg-type]
    try:
        assert not _collates(server.url)
        assert _probe(server.url)
    finally:
        server.close()
