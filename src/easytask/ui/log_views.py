"""The log viewer: a bounded window of each stored stream, paging by byte offset, search on the
server, and the download of a whole stream.

Offsets are the stream's own (what the agent wrote), also across the cut of a long output
(spec 16): the stored copy is a few segments, each at its stream offset, and no window spans a
cut. A window's edges fall on line starts where a line end is near, else on a UTF-8 character
boundary, so a window never starts inside a character or, as a rule, inside an escape sequence.
"""

from __future__ import annotations

import asyncio
import re
from collections import OrderedDict
from dataclasses import dataclass
from typing import Any

from aiohttp import web

from easytask.scheduler.app import STREAMS, SchedulerApp
from easytask.ui.render import page, run_view
from easytask.ui.views import digits, ops

WINDOW = 256 * 1024  # bytes of a stream a page holds at once
MAX_WINDOW = 1024 * 1024
LINE_SLACK = 16 * 1024  # how far an edge moves to keep a line whole
MAX_HITS = 200  # per stream
MAX_QUERY = 256  # characters
SEARCH_BLOCK = 1024 * 1024  # bytes lowered at once while searching
SNIPPET = 120  # bytes of a hit's line shown on each side of the match
MAX_MARKS = 1000  # highlighted matches in one window
CHUNK_LINES = 64
ANSI = re.compile(r"\x1b\[[0-9;?]*[ -/]*[@-~]|\x1b[@-_]")
CONTROLS = {c: 0x2400 + c for c in range(32) if c != 9} | {127: 0x2421}  # shown as ␀…␟, ␡


@dataclass(frozen=True, slots=True)
class Stored:
    """A stream's stored copy: segments ``(stream offset, bytes)``, several once the middle of
    a long output was cut; and the stream offset the stored copy ends at."""

    parts: tuple[tuple[int, bytes], ...]
    end: int

    def segment(self, offset: int) -> tuple[int, bytes]:
        """The segment holding ``offset`` (the next one when it falls in a cut; the last when
        it is past the end)."""
        for start, data in self.parts:
            if offset < start + len(data) or (start, data) == self.parts[-1]:
                return start, data
        return self.parts[-1]

    def cut_before(self, start: int) -> int:
        """Bytes cut just before the segment starting at ``start`` (0 when none)."""
        previous = 0
        for seg_start, data in self.parts:
            if seg_start == start:
                return start - previous
            previous = seg_start + len(data)
        return 0


class StoredCopies:
    """The stored copies the log pages read (up to 10 MiB each): loaded at most LOADS at a
    time and the last KEEP kept, so a page and its window requests read a copy once and 40
    requests at once cannot hold 40 copies. A copy that grew is a new one."""

    KEEP = 4
    LOADS = 2

    def __init__(self) -> None:
        self._kept: OrderedDict[tuple[str, str, int], Stored] = OrderedDict()
        self._loads = asyncio.Semaphore(self.LOADS)

    async def get(self, app: SchedulerApp, run_id: str, stream: str) -> Stored:
        key = (run_id, stream, await app.output_end(run_id, stream))
        async with self._loads:
            found = self._kept.get(key)
            if found is None:
                parts = await app.output_segments(run_id, stream)
                end = parts[-1][0] + len(parts[-1][1]) if parts else 0  # more may have come
                found = Stored(tuple(parts), end) if parts else Stored(((0, b""),), 0)
                self._kept[key] = found
                while len(self._kept) > self.KEEP:
                    self._kept.popitem(last=False)
            self._kept.move_to_end(key)
            return found


COPIES_KEY: web.AppKey[StoredCopies] = web.AppKey("easytask.log_copies", StoredCopies)


async def stored(request: web.Request, run_id: str, stream: str) -> Stored:
    """The stored copy of a run's stream, its pieces at their stream offsets."""
    return await request.app[COPIES_KEY].get(ops(request), run_id, stream)


# ----- windows -----


@dataclass(frozen=True, slots=True)
class Window:
    stream: str
    start: int
    stop: int
    size: int
    data: bytes
    cut_before: int
    cut_after: int

    @property
    def first(self) -> bool:
        return self.start <= 0 or self.size == 0

    @property
    def last(self) -> bool:
        return self.stop >= self.size


def _line_start_at_or_after(data: bytes, i: int) -> int:
    """``i`` moved forward to a line start (or a character boundary) within the slack."""
    if i <= 0 or i >= len(data) or data[i - 1] == 0x0A:
        return max(0, min(i, len(data)))
    nl = data.find(b"\n", i, i + LINE_SLACK)
    if nl >= 0:
        return nl + 1
    while i < len(data) and data[i] & 0xC0 == 0x80:
        i += 1
    return i


def _line_end_at_or_before(data: bytes, i: int, low: int) -> int:
    """``i`` moved back to just after a line end (or to a character boundary), not below
    ``low``."""
    if i >= len(data):
        return len(data)
    nl = data.rfind(b"\n", max(low, i - LINE_SLACK), i)
    if nl >= 0:
        return nl + 1
    while i > low and data[i] & 0xC0 == 0x80:
        i -= 1
    return i


def window_after(st: Stored, stream: str, offset: int, length: int) -> Window:
    """The window starting at the first line start at or after ``offset``."""
    seg_start, data = st.segment(max(0, offset))
    i = _line_start_at_or_after(data, max(0, offset - seg_start))
    j = _line_end_at_or_before(data, i + length, i + 1) if i + length < len(data) else len(data)
    return _window(st, stream, seg_start, data, i, j)


def window_before(st: Stored, stream: str, stop: int, length: int) -> Window:
    """The window ending at ``stop`` (a line boundary, or the stored end), as long as
    ``length`` allows from a line start."""
    if stop <= 0:
        return window_after(st, stream, 0, length)
    stop = min(stop, st.end)
    seg_start, data = st.segment(max(0, stop - 1))
    if stop <= seg_start:  # at a segment's start: the window before it ends the previous one
        previous = [p for p in st.parts if p[0] + len(p[1]) <= seg_start]
        if previous:
            seg_start, data = previous[-1]
        stop = seg_start + len(data)
    j = min(len(data), stop - seg_start)
    i = _line_start_at_or_after(data, max(0, j - length)) if j - length > 0 else 0
    if i >= j and j > 0:  # one line longer than the window: cut it at a character
        i = _line_start_at_or_after(data[:j], max(0, j - length))
    return _window(st, stream, seg_start, data, min(i, j), j)


def _window(st: Stored, stream: str, seg_start: int, data: bytes, i: int, j: int) -> Window:
    seg_end = seg_start + len(data)
    cut_after = 0
    for start, _ in st.parts:
        if start > seg_end:
            cut_after = start - seg_end
            break
    return Window(
        stream=stream,
        start=seg_start + i,
        stop=seg_start + j,
        size=st.end,
        data=data[i:j],
        cut_before=st.cut_before(seg_start) if i == 0 else 0,
        cut_after=cut_after if j == len(data) else 0,
    )


def pieces(data: bytes, query: bytes) -> list[tuple[str, bool]]:
    """The window's text in pieces, ``True`` for a match of ``query`` (ASCII letters of any
    case), for the page to highlight."""
    out: list[tuple[str, bool]] = []
    if query:
        lowered, q, at, marks = data.lower(), query.lower(), 0, 0
        while marks < MAX_MARKS:
            p = lowered.find(q, at)
            if p < 0:
                break
            out += [(_text(data[at:p]), False), (_text(data[p : p + len(q)]), True)]
            at, marks = p + len(q), marks + 1
        data = data[at:]
    out.append((_text(data), False))
    return [p for p in out if p[0]]


def chunks(parts: list[tuple[str, bool]], size: int = CHUNK_LINES) -> list[list[tuple[str, bool]]]:
    """The pieces in runs of about ``size`` lines: the page lays out only the runs in view
    (``content-visibility``), so a window opens fast even when full of escape sequences."""
    out: list[list[tuple[str, bool]]] = [[]]
    count = 0
    for text, marked in parts:
        if count >= size:  # a marked piece (never cut) may have filled the run past its size
            out.append([])
            count = 0
        while not marked and count + text.count("\n") >= size:
            cut = _nth_newline(text, size - count) + 1
            out[-1].append((text[:cut], False))
            out.append([])
            text, count = text[cut:], 0
        if text:
            out[-1].append((text, marked))
            count += text.count("\n")
    return [c for c in out if c]


def _nth_newline(text: str, n: int) -> int:
    at = -1
    for _ in range(max(1, n)):
        at = text.index("\n", at + 1)
    return at


def _text(data: bytes) -> str:
    return data.decode("utf-8", "replace")


def window_json(w: Window, query: bytes) -> dict[str, Any]:
    return {
        "stream": w.stream,
        "offset": w.start,
        "end": w.stop,
        "size": w.size,
        "first": w.first,
        "last": w.last,
        "cut_before": w.cut_before,
        "cut_after": w.cut_after,
        "pieces": pieces(w.data, query),
    }


# ----- search -----


@dataclass(frozen=True, slots=True)
class Hit:
    stream: str
    offset: int  # of the match
    line_start: int
    line: int | None  # 1-based, when known (before any cut)
    before: str
    match: str
    after: str


def search(st: Stored, stream: str, query: bytes, limit: int = MAX_HITS) -> tuple[list[Hit], bool]:
    """The lines of the stored stream holding ``query`` (ASCII case ignored), one hit a line;
    and whether there were more than ``limit``. Searched a block at a time."""
    hits: list[Hit] = []
    q = query.lower()
    for index, (seg_start, data) in enumerate(st.parts):
        lines, counted, skip_to = 1, 0, 0
        for block in range(0, len(data), SEARCH_BLOCK):
            hay = data[block : block + SEARCH_BLOCK + len(q) - 1].lower()
            at = max(0, skip_to - block)
            while (p := hay.find(q, at)) >= 0 and p < SEARCH_BLOCK:
                p += block
                if len(hits) == limit:
                    return hits, True
                nl = data.rfind(b"\n", max(0, p - LINE_SLACK), p)
                start = nl + 1 if nl >= 0 else max(0, p - LINE_SLACK)
                end = data.find(b"\n", p + len(q))
                end = len(data) if end < 0 else end
                lines += data.count(b"\n", counted, start)
                counted = start
                hits.append(Hit(
                    stream=stream, offset=seg_start + p, line_start=seg_start + start,
                    line=lines if index == 0 else None,
                    before=_shown(data[max(start, p - SNIPPET) : p]),
                    match=_shown(data[p : p + len(q)]),
                    after=_shown(data[p + len(q) : min(end, p + len(q) + SNIPPET)]),
                ))  # fmt: skip
                skip_to = end + 1  # one hit a line
                at = skip_to - block
    return hits, False


def _shown(data: bytes) -> str:
    """A piece of a hit's line as plain text: colours dropped, control characters visible."""
    return ANSI.sub("", _text(data)).translate(CONTROLS)


# ----- requests -----


def stream_of(request: web.Request) -> str:
    stream = request.match_info["stream"]
    if stream not in STREAMS:
        raise web.HTTPNotFound(text=f"no stream {stream[:40]!r}: stdout or stderr")
    return stream


def offset_param(query: Any, name: str, default: int) -> int:
    """A byte offset of a query string: the default when it is missing or no number, 0 when
    negative; a huge one is past any stream's end."""
    text = query.get(name, "")
    if text.startswith("-") and digits(text[1:]):
        return 0
    if not digits(text):
        return default
    return int(text) if len(text) < 16 else 2**53


def query_param(query: Any) -> tuple[str, str]:
    """The search text of a query string, and what is wrong with it ("" when fine)."""
    text = query.get("q", "")
    if len(text) > MAX_QUERY:
        return "", f"The search text is longer than {MAX_QUERY} characters: shorten it."
    return text, ""


async def log_page(request: web.Request) -> web.Response:
    """``/runs/{run_id}/log``: each stream's last window (or, from a search hit, the window at
    ``at`` of ``stream``), and the hits of ``?q=``."""
    app = ops(request)
    run, _ = await app.get_run(request.match_info["run_id"])
    q, problem = query_param(request.query)
    needle = q.encode("utf-8", "surrogatepass")
    at_stream = request.query.get("stream", "")
    at = offset_param(request.query, "at", -1) if at_stream in STREAMS else -1
    views, hits, more = [], [], False
    for name in STREAMS:
        st = await stored(request, run.run_id, name)
        if name == at_stream and at >= 0:
            w = window_after(st, name, max(0, at - WINDOW // 4), WINDOW)
        else:
            w = window_before(st, name, st.end, WINDOW)
        view = window_json(w, needle if q else b"")
        views.append({**view, "chunks": chunks(view["pieces"]), "follow_from": st.end})
        if q:
            found, cut_short = search(st, name, needle)
            hits += found
            more = more or cut_short
    return page(request, "run_log.html", run=run_view(run), streams=views, q=q,
                problem=problem, hits=hits, more=more, max_hits=MAX_HITS,
                follow=not run.state.final and at < 0, at_stream=at_stream if at >= 0 else "",
                window=WINDOW)  # fmt: skip


async def log_window(request: web.Request) -> web.Response:
    """``/runs/{run_id}/log/{stream}/window``: JSON of the window after ``offset`` (or before
    ``before``), at most ``length`` bytes, the matches of ``q`` marked."""
    stream = stream_of(request)
    app = ops(request)
    run, _ = await app.get_run(request.match_info["run_id"])
    q, problem = query_param(request.query)
    if problem:
        raise web.HTTPBadRequest(text=problem)
    length = min(max(1, offset_param(request.query, "length", WINDOW)), MAX_WINDOW)
    st = await stored(request, run.run_id, stream)
    if "before" in request.query:
        w = window_before(st, stream, offset_param(request.query, "before", st.end), length)
    else:
        w = window_after(st, stream, offset_param(request.query, "offset", 0), length)
    return web.json_response(window_json(w, q.encode("utf-8", "surrogatepass")))


async def log_download(request: web.Request) -> web.StreamResponse:
    stream = stream_of(request)
    run, streams = await ops(request).run_output(request.match_info["run_id"])
    data, _ = streams[stream]
    filename = f"{run.name}-{run.run_date}-{run.attempt}.{stream}.txt"
    return web.Response(
        body=data,
        content_type="text/plain",
        charset="utf-8",
        headers={"Content-Disposition": f'attachment; filename="{filename}"'},
    )
