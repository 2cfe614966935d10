"""A live page is told when the device's stream stops (its streamer died, the link dropped) and when it resumes:
never a silent frozen picture passed off as live."""

from __future__ import annotations

import asyncio
import json
from collections.abc import Callable
from types import SimpleNamespace
from typing import Any

import pytest

from agent.customs.console import live


class FakeSocket:
    def __init__(self) -> None:
        self.inbox: asyncio.Queue[str] = asyncio.Queue()
        self.sent: list[str | bytes] = []

    async def receive_text(self) -> str:
        return await self.inbox.get()

    async def send_text(self, text: str) -> None:
        self.sent.append(text)

    async def send_bytes(self, data: bytes) -> None:
        self.sent.append(data)

    def kinds(self) -> list[str]:
        return ["bytes" if isinstance(m, bytes) else json.loads(m)["t"] for m in self.sent]


async def until(cond: Callable[[], bool], timeout: float = 20.0) -> None:
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout
    while not cond():
        assert loop.time() < deadline, "condition not met in time"
        await asyncio.sleep(0.02)


def test_page_is_told_when_the_stream_stalls_and_resumes(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(live, "STREAM_STALL_S", 0.3)
    monkeypatch.setattr(live, "PAGE_KEEPALIVE_TIMEOUT_S", 1e9)

    async def scenario() -> None:
        ws = FakeSocket()
        out: asyncio.Queue[Any] = asyncio.Queue()
        viewer = SimpleNamespace(out=out, session="s1", site="s", device="d",
                                 services=SimpleNamespace(client=SimpleNamespace(send=lambda *a: None)))
        pump = asyncio.ensure_future(live._pump(ws, viewer, 1e9))  # type: ignore[arg-type]
        out.put_nowait(b"fragment-1")
        await until(lambda: "stalled" in ws.kinds())
        stalled = json.loads(next(m for m in ws.sent if isinstance(m, str)))
        assert "NOT live" in stalled["message"]
        out.put_nowait(b"fragment-2")
        await until(lambda: ws.kinds()[-2:] == ["resumed", "bytes"])
        ws.inbox.put_nowait('{"t": "stop"}')
        await asyncio.wait_for(pump, 10)
        assert ws.kinds() == ["bytes", "stalled", "resumed", "bytes"]

    asyncio.run(scenario())
