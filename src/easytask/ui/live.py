"""The live channel: one WebSocket per tab, topics with sequence numbers, output followed.

A page names its live parts (``data-live="board"``, ``run:<id>``, ``run-state:<id>``,
``task-runs:<tid>``, ``runs:<query>``, ``agents``, ``agents:control``, ``adhoc:<event id>``);
the tab subscribes to them with the sequence number it last saw. The hub re-renders a topic
at most once per ``FLUSH_SECONDS`` after a run changed (agents and ad-hoc executions every
``AGENTS_REFRESH_SECONDS``: they are not run events), once for all its subscribers, and sends
the new HTML with the next sequence number: a subscriber that is behind gets the current
snapshot, so a reconnecting tab (scheduler restart, network blip) is resynced, never silently
stale. Log panes subscribe with their byte offsets and get the rest of the output, then its
end.

Each client has a bounded queue; a client that falls behind is closed with code 4000 and
resubscribes, so a slow browser never slows the engine or the other clients.
"""

from __future__ import annotations

import asyncio
import codecs
import contextlib
import json
import logging
import re
from collections import Counter
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import parse_qs

from aiohttp import WSMsgType, web

from easytask.core.errors import EasyTaskError
from easytask.core.records import FollowEnd, FollowPiece
from easytask.scheduler.app import STREAMS

log = logging.getLogger(__name__)

FLUSH_SECONDS = 0.5
BOARD_REFRESH_SECONDS = 10.0  # the board also changes with time and agents, not only runs
AGENTS_REFRESH_SECONDS = 2.0
RENDER_BACKOFF = 10.0  # a topic's renders take at most a tenth of the loop's time
MAX_DEFER_SECONDS = 1.5  # and still reach the tab within 2 s (spec 13)
CLIENT_QUEUE = 1024
MAX_TOPICS = 32  # per tab
MAX_LOGS = 4  # runs followed per tab
MAX_ALL_TOPICS = 2000  # over all tabs: a flood of distinct `runs:` filters is refused
# One account's tabs (a shared wall-board account on many screens included) may hold at most
# a quarter of the hub, so no single login fills it for everyone else.
MAX_USER_TOPICS = MAX_ALL_TOPICS // 4  # distinct topics over one user's tabs
MAX_USER_SOCKETS = 256  # one user's open tabs
TOO_MANY_CODE = 4008
SESSION_CHECK_SECONDS = 30.0  # a logged-out or deactivated user's socket closes within this
SESSION_ENDED_CODE = 4401
CLOSE_SECONDS = 2.0
RESYNC_CODE = 4000
AGENT_TOPICS = ("agents", "agents:control")  # the list without and with its Restart buttons
TOPIC = re.compile(
    r"(board|agents(?::control)?|adhoc:\d{1,18}|runs:[^\s]{0,512}|run:\S{1,200}"
    r"|run-state:\S{1,200}|task-runs:\d{1,10}"
    r"|group:\d{1,10}(?::\S{1,200})?)"
)

Render = Callable[[str], Awaitable[str | None]]


class Client:
    """One tab's socket and its bounded outgoing queue."""

    def __init__(self, ws: web.WebSocketResponse, user: str = "") -> None:
        self.ws = ws
        self.user = user
        self.queue: asyncio.Queue[str] = asyncio.Queue(CLIENT_QUEUE)
        self.dropped = asyncio.Event()
        self.topics = 0

    def send(self, message: dict[str, Any]) -> None:
        self.send_text(json.dumps(message, ensure_ascii=False))

    def send_text(self, text: str) -> None:
        """Queue an encoded message (a topic's change is encoded once for all its tabs)."""
        if self.dropped.is_set():
            return
        try:
            self.queue.put_nowait(text)
        except asyncio.QueueFull:
            self.dropped.set()  # too slow: closed, and it resyncs when it reconnects

    async def write(self) -> None:
        while True:
            text = await self.queue.get()
            await self.ws.send_str(text)


@dataclass(slots=True)
class Topic:
    key: str
    clients: set[Client] = field(default_factory=set)
    seq: int = 0
    html: str | None = None
    dirty: bool = False
    rendering: bool = False
    not_before: float = 0.0  # loop time before which a costly topic is not rendered again
    settled: bool = False  # an ad-hoc event whose executions are all final: nothing to follow


class LiveHub:
    """Topics, their subscribers, and the loop that re-renders what changed."""

    def __init__(self, render: Render) -> None:
        self._render = render
        self._topics: dict[str, Topic] = {}
        self._wake = asyncio.Event()
        self.sockets: set[web.WebSocketResponse] = set()
        self._by_user: dict[str, Counter[str]] = {}  # user -> subscriptions per topic
        self._sockets_by_user: Counter[str] = Counter()

    async def close_all(self) -> None:
        """At shutdown: tell every tab the scheduler is going away (it will reconnect); a tab
        that does not answer within CLOSE_SECONDS is cut off, so a stop never hangs."""
        sockets = list(self.sockets)
        closing = [asyncio.create_task(ws.close(code=1001, message=b"scheduler stopping"))
                   for ws in sockets]  # fmt: skip
        if closing:
            _, late = await asyncio.wait(closing, timeout=CLOSE_SECONDS)
            for task in late:
                task.cancel()
        for ws in sockets:
            if not ws.closed:
                transport = ws._req.transport if ws._req is not None else None
                if transport is not None:
                    transport.abort()

    @property
    def clients(self) -> int:
        return len({c for t in self._topics.values() for c in t.clients})

    async def subscribe(self, client: Client, key: str, seen: int) -> None:
        mine = self._by_user.setdefault(client.user, Counter())
        if key not in mine and len(mine) >= MAX_USER_TOPICS:
            # One user's tabs (or script) cannot fill the hub for everyone else.
            client.send({"error": f"too many live topics for {client.user}; {key} is not followed"})
            return
        topic = self._topics.get(key)
        joining = topic is None or client not in topic.clients
        if joining and client.topics >= MAX_TOPICS:
            return
        if topic is None:
            if len(self._topics) >= MAX_ALL_TOPICS:
                client.send({"error": f"too many live topics; {key} is not followed"})
                return
            topic = self._topics[key] = Topic(key)
        if joining:
            client.topics += 1
            mine[key] += 1
        topic.clients.add(client)
        if topic.html is None:
            # Tabs that subscribe while its first render is under way get that render: 100 tabs
            # opening the same run at once cost one render, not 100.
            if not topic.rendering:
                await self._refresh(topic)
        elif seen != topic.seq:
            client.send({"topic": key, "seq": topic.seq, "html": topic.html})

    def leave(self, client: Client) -> None:
        mine = self._by_user.get(client.user, Counter())
        for key in [k for k, t in self._topics.items() if client in t.clients]:
            topic = self._topics[key]
            topic.clients.discard(client)
            if not topic.clients:
                del self._topics[key]
            mine[key] -= 1
            if mine[key] <= 0:
                del mine[key]
        if not mine:
            self._by_user.pop(client.user, None)

    def open_socket(self, ws: web.WebSocketResponse, user: str) -> bool:
        """Count a tab's socket; False (and not counted) past MAX_USER_SOCKETS."""
        if self._sockets_by_user[user] >= MAX_USER_SOCKETS:
            return False
        self._sockets_by_user[user] += 1
        self.sockets.add(ws)
        return True

    def close_socket(self, ws: web.WebSocketResponse, user: str) -> None:
        if ws in self.sockets:
            self.sockets.discard(ws)
            self._sockets_by_user[user] -= 1
            if self._sockets_by_user[user] <= 0:
                del self._sockets_by_user[user]

    def run_changed(self, run_id: str, tid: int) -> None:
        for key in (
            "board",
            *AGENT_TOPICS,
            f"run:{run_id}",
            f"run-state:{run_id}",
            f"task-runs:{tid}",
        ):
            self._mark(key)
        for key, topic in self._topics.items():
            if key.startswith(("runs:", "group:")):  # any run may be one of theirs
                topic.dirty = True
        self._wake.set()

    def everything_changed(self) -> None:
        for topic in self._topics.values():
            topic.dirty = True
        self._wake.set()

    def settle(self, key: str) -> None:
        """The topic will not change any more (an ad-hoc event whose executions are all final):
        the periodic refresh leaves it alone."""
        topic = self._topics.get(key)
        if topic is not None:
            topic.settled = True

    def _mark_periodic(self) -> None:
        """What changes without a run changing: agents (connects, drops, heartbeats) and
        ad-hoc executions (their states and output are not run events), cheap to render."""
        for key in AGENT_TOPICS:
            self._mark(key)
        for key, topic in self._topics.items():
            if key.startswith("adhoc:") and not topic.settled:
                topic.dirty = True

    def _mark(self, key: str) -> None:
        topic = self._topics.get(key)
        if topic is not None:
            topic.dirty = True

    async def _refresh(self, topic: Topic) -> None:
        topic.dirty = False
        topic.rendering = True
        loop = asyncio.get_running_loop()
        began = loop.time()
        try:
            html = await self._render(topic.key)
            # A topic that costs much to render (the board of 100,000 tasks) is rendered at
            # most once per RENDER_BACKOFF times its cost: the engine keeps the CPU.
            spent = loop.time() - began
            topic.not_before = loop.time() + min(spent * RENDER_BACKOFF, MAX_DEFER_SECONDS)
        except EasyTaskError as exc:  # e.g. the run or task was deleted meanwhile
            log.debug("live topic %s: %s", topic.key, exc)
            return
        except Exception:  # one broken topic must not stop the others
            log.exception("live topic %s could not be rendered", topic.key)
            return
        finally:
            topic.rendering = False
        if html is None or html == topic.html:
            return
        topic.html, topic.seq = html, topic.seq + 1
        text = json.dumps({"topic": topic.key, "seq": topic.seq, "html": html}, ensure_ascii=False)
        for client in list(topic.clients):
            client.send_text(text)

    async def run(self, changes: Any) -> None:
        """Feed on the application's run changes (``watch_runs``) and flush dirty topics."""
        flusher = watched(asyncio.create_task(self._flush_loop()), "the flush loop")
        try:
            while True:
                event = await changes.queue.get()
                self.run_changed(event.run_id, event.tid)
                while not changes.queue.empty():
                    event = changes.queue.get_nowait()
                    self.run_changed(event.run_id, event.tid)
                if changes.overflowed:
                    changes.overflowed = False
                    self.everything_changed()
        finally:
            flusher.cancel()
            changes.close()

    async def _flush_loop(self) -> None:
        loop = asyncio.get_running_loop()
        next_board = loop.time() + BOARD_REFRESH_SECONDS
        next_agents = loop.time() + AGENTS_REFRESH_SECONDS
        while True:
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._wake.wait(), AGENTS_REFRESH_SECONDS)
            self._wake.clear()
            if loop.time() >= next_board:
                self._mark("board")
                next_board = loop.time() + BOARD_REFRESH_SECONDS
            if loop.time() >= next_agents:
                self._mark_periodic()
                next_agents = loop.time() + AGENTS_REFRESH_SECONDS
            now = loop.time()
            for topic in [t for t in self._topics.values() if t.dirty and t.clients]:
                if topic.not_before <= now and not topic.rendering:
                    await self._refresh(topic)
                else:  # costly and rendered lately, or a first render under way: still dirty
                    self._wake.set()
            await asyncio.sleep(FLUSH_SECONDS)


def topic_query(key: str) -> dict[str, str]:
    """The filters of a ``runs:<query string>`` topic."""
    return {k: v[0] for k, v in parse_qs(key[len("runs:") :]).items() if v}


FollowOutput = Callable[[str, tuple[str, ...], dict[str, int]], Any]


async def follow_log(client: Client, follow: FollowOutput, run_id: str,
                     start: dict[str, int]) -> None:  # fmt: skip
    """Send the run's output from ``start`` on, then its end."""
    decoders = {s: codecs.getincrementaldecoder("utf-8")("replace") for s in STREAMS}
    try:
        async for item in follow(run_id, STREAMS, start):
            if isinstance(item, FollowPiece):
                text = decoders[item.stream].decode(item.data)
                client.send({"log": run_id, "stream": item.stream, "text": text, "end": item.end})
            elif isinstance(item, FollowEnd):
                client.send({"log_end": run_id, "state": item.state.value,
                             "complete": item.complete})  # fmt: skip
                return
    except EasyTaskError as exc:
        client.send({"log_error": run_id, "message": str(exc)})


def _offsets(spec: dict[str, Any]) -> dict[str, int]:
    out: dict[str, int] = {}
    for stream in STREAMS:
        value = spec.get(stream, 0)
        out[stream] = value if isinstance(value, int) and 0 <= value < 2**40 else 0
    return out


Authenticate = Callable[[], Awaitable[object]]


async def watch_session(authenticate: Authenticate) -> None:
    """Return when the tab's session has ended (logout, expiry, deactivation, role change)."""
    while True:
        await asyncio.sleep(SESSION_CHECK_SECONDS)
        try:
            await authenticate()
        except EasyTaskError:
            return


async def serve(request: web.Request, hub: LiveHub, follow: FollowOutput,
                authenticate: Authenticate, user: str) -> web.StreamResponse:  # fmt: skip
    """``GET /live``: the tab's socket (its session was checked by the middleware, and is
    checked again every SESSION_CHECK_SECONDS: an ended session closes it with 4401)."""
    origin = request.headers.get("Origin")
    if origin is not None and origin.split("://", 1)[-1] != request.host:
        raise web.HTTPForbidden(text="the live channel is for this dashboard's own pages")
    ws = web.WebSocketResponse(heartbeat=20.0, max_msg_size=64 * 1024)
    await ws.prepare(request)
    if not hub.open_socket(ws, user):
        await ws.close(code=TOO_MANY_CODE, message=b"too many live tabs; close some")
        return ws
    client = Client(ws, user)
    writer = asyncio.create_task(client.write())
    dropped = asyncio.create_task(client.dropped.wait())
    logs: dict[str, asyncio.Task[None]] = {}
    reader = asyncio.create_task(_read(ws, client, hub, follow, logs))
    session = asyncio.create_task(watch_session(authenticate))
    try:
        await asyncio.wait({writer, dropped, reader, session}, return_when=asyncio.FIRST_COMPLETED)
        if dropped.done():
            await ws.close(code=RESYNC_CODE, message=b"too slow: resubscribe")
        elif session.done():
            await ws.close(code=SESSION_ENDED_CODE, message=b"session ended: log in again")
    finally:
        hub.close_socket(ws, user)
        hub.leave(client)
        for task in (writer, dropped, reader, session, *logs.values()):
            task.cancel()
        with contextlib.suppress(asyncio.TimeoutError):
            await asyncio.wait_for(ws.close(), CLOSE_SECONDS)
    return ws


def _list(value: object) -> list[Any]:
    return value if isinstance(value, list) else []


def watched(task: asyncio.Task[Any], what: str) -> asyncio.Task[Any]:
    """A background task whose failure is logged, not lost (cancellation is not a failure)."""

    def done(t: asyncio.Task[Any]) -> None:
        if not t.cancelled() and t.exception() is not None:
            log.error("live channel: %s failed", what, exc_info=t.exception())

    task.add_done_callback(done)
    return task


async def _read(ws: web.WebSocketResponse, client: Client, hub: LiveHub, follow: FollowOutput,
                logs: dict[str, asyncio.Task[None]]) -> None:  # fmt: skip
    async for msg in ws:
        if msg.type != WSMsgType.TEXT:
            continue
        try:
            request = json.loads(msg.data)
        except ValueError:
            client.send({"error": "not JSON"})
            continue
        if not isinstance(request, dict):
            continue
        for item in _list(request.get("subscribe"))[:MAX_TOPICS]:
            if not isinstance(item, dict):
                continue
            key, seen = item.get("topic"), item.get("seq", 0)
            if isinstance(key, str) and TOPIC.fullmatch(key):
                await hub.subscribe(client, key, seen if isinstance(seen, int) else 0)
        for spec in _list(request.get("logs"))[:MAX_LOGS]:
            run_id = spec.get("run_id") if isinstance(spec, dict) else None
            if len(logs) >= MAX_LOGS:
                break
            if isinstance(run_id, str) and len(run_id) <= 200 and run_id not in logs:
                logs[run_id] = watched(
                    asyncio.create_task(follow_log(client, follow, run_id, _offsets(spec))),
                    f"following {run_id}",
                )
