"""The log viewer over real HTTP against a real scheduler and store: windows of a stream by
byte offset that keep lines and UTF-8 characters whole and add up to the stream, also across
the cut of an output over 10 MiB; the search on the server (literal, capped, escaped); and
hostile parameters answered without a 500."""

from __future__ import annotations

from typing import Any

import pytest

from easytask.core.models import Run
from easytask.core.runid import make_run_id
from easytask.core.states import RunState
from easytask.store.ports import OUTPUT_HEAD, OUTPUT_TAIL
from easytask.ui.log_views import MAX_HITS, MAX_WINDOW
from tests.integration.conftest import START, Dash

CHUNK = 64 * 1024


async def stored_run(d: Dash, stdout: bytes, stderr: bytes = b"", tid: int = 1001) -> str:
    """A final run whose output is in the scheduler's store, as an agent would have sent it."""
    store = d.service.store
    assert store is not None
    run = Run(run_id=make_run_id("default", tid, START, 1), tid=tid, name=f"t{tid}",
              instance="default", run_date="20260601", scheduled_utc=START, local_time="11:59",
              timezone="UTC", attempt=1, state=RunState.SUCCESS, queue="q1", created_at=START,
              updated_at=START)  # fmt: skip
    store.save_run(run)
    for stream, data in (("stdout", stdout), ("stderr", stderr)):
        for offset in range(0, len(data), CHUNK):
            store.append_output(run.run_id, stream, offset, data[offset : offset + CHUNK])
    await store.flush()
    return run.run_id


async def window(d: Dash, run_id: str, stream: str = "stdout", **params: Any) -> dict[str, Any]:
    answer = await d.http.get(f"{d.base}/runs/{run_id}/log/{stream}/window",
                              params={k: str(v) for k, v in params.items()})  # fmt: skip
    assert answer.status == 200, await answer.text()
    result: dict[str, Any] = await answer.json()
    return result


def text(win: dict[str, Any]) -> str:
    return "".join(piece for piece, _ in win["pieces"])


def lines(count: int, tag: str = "line") -> bytes:
    """Numbered lines, some with two- and four-byte characters, some with colours."""
    out = []
    for i in range(1, count + 1):
        extra = "é€" if i % 7 == 0 else "🙂" if i % 11 == 0 else "\x1b[31mred\x1b[0m" * (i % 5 == 0)
        out.append(f"{tag} {i:06d} {extra}{'x' * (i % 50)}\n")
    return "".join(out).encode()


async def test_windows_keep_lines_whole_and_add_up_to_the_stream(dash: Dash) -> None:
    data = lines(20_000)
    run_id = await stored_run(dash, data)
    await dash.login()
    # Forward from the start, window by window: whole lines, exact offsets, nothing lost.
    got, offset = [], 0
    while offset < len(data):
        win = await window(dash, run_id, offset=offset, length=50_000)
        assert win["offset"] == offset and win["size"] == len(data)
        body = text(win).encode()
        assert body == data[win["offset"] : win["end"]]
        assert body.endswith(b"\n") and 0 < len(body) <= 50_000
        got.append(body)
        offset = win["end"]
    assert b"".join(got) == data and win["last"] and not win["first"]
    # Backward from the end: each window ends where the next one started.
    win = await window(dash, run_id, before="", length=50_000)
    assert win["end"] == len(data) and text(win).encode() == data[win["offset"] :]
    back = await window(dash, run_id, before=win["offset"], length=50_000)
    assert back["end"] == win["offset"] and text(back).startswith("line ")
    # An offset inside a line or a character moves on to the next line start.
    middle = data.index("€".encode()) + 1
    win = await window(dash, run_id, offset=middle, length=1000)
    assert data[win["offset"] - 1 : win["offset"]] == b"\n" and win["offset"] > middle
    assert text(win).startswith("line ")


async def test_the_log_page_holds_a_bounded_window_and_searches(dash: Dash) -> None:
    needle = b"<script>alert(1)</script> needle [x].*( here\n"
    data = lines(30_000) + needle + lines(30_000, "more")
    run_id = await stored_run(dash, data, stderr=b"only stderr\n")
    await dash.login()
    page = await dash.http.get(f"{dash.base}/runs/{run_id}/log")
    html = await page.text()
    assert page.status == 200 and len(html) < 600_000 and len(data) > 2_000_000
    assert "more 030000" in html and "more 020000" not in html  # the tail only
    assert f'data-offset="{len(data)}"' in html  # following resumes at the stored end
    # Literal search (regex characters are text), the hit escaped, its line and offset given.
    answer = await dash.http.get(f"{dash.base}/runs/{run_id}/log", params={"q": "[x].*("})
    html = await answer.text()
    assert answer.status == 200 and "1 matching line for" in html
    assert "&lt;script&gt;alert(1)&lt;/script&gt; needle <mark>[x].*(</mark>" in html
    assert "<script>alert" not in html
    hit = data.index(b"[x].*(")
    line_start = data.rindex(b"\n", 0, hit) + 1
    assert f"line 30001 · byte {hit}" in html and f"at={line_start}" in html
    # The hit opens the window of its stream at its line, the match marked.
    opened = {"q": "NEEDLE", "stream": "stdout", "at": line_start}
    answer = await dash.http.get(f"{dash.base}/runs/{run_id}/log", params=opened)
    html = await answer.text()
    assert "<mark>needle</mark>" in html and "line 029999" in html
    win = await window(dash, run_id, offset=line_start, length=2000, q="needle")
    assert [piece for piece, marked in win["pieces"] if marked] == ["needle"]
    assert text(win).startswith("<script>alert(1)</script> needle")  # JSON text, shown as text


async def test_search_hits_are_capped(dash: Dash) -> None:
    data = b"".join(b"match %d\n" % i for i in range(MAX_HITS + 50))
    run_id = await stored_run(dash, data)
    await dash.login()
    answer = await dash.http.get(f"{dash.base}/runs/{run_id}/log", params={"q": "match"})
    html = await answer.text()
    assert f"{MAX_HITS}+ matching lines" in html and "Only the first" in html
    assert html.count("data-hit=") == MAX_HITS


async def test_windows_and_search_across_the_cut_of_a_long_output(dash: Dash) -> None:
    total = OUTPUT_HEAD + OUTPUT_TAIL + 3 * 1024 * 1024
    row = b"%09d " + b"y" * 89 + b"\n"  # 100 bytes a line
    data = b"".join(row % i for i in range(total // 100))
    marker = b"\n[... 1 bytes cut ...]\n"  # output that looks like a cut marker is text
    data = data[:1000] + marker + data[1000 + len(marker) :]
    run_id = await stored_run(dash, data)
    await dash.login()
    head = await window(dash, run_id, offset=0, length=MAX_WINDOW * 4)
    assert head["offset"] == 0 and len(text(head).encode()) <= MAX_WINDOW
    assert text(head).encode() == data[: head["end"]]
    # Page forward to the end of the head: the next window is the tail, the cut said.
    offset = OUTPUT_HEAD - 10_000
    win = await window(dash, run_id, offset=offset, length=MAX_WINDOW)
    assert win["cut_after"] > 0 and win["end"] >= OUTPUT_HEAD
    tail = await window(dash, run_id, offset=win["end"], length=1000)
    gap = win["cut_after"]
    assert tail["offset"] == win["end"] + gap and tail["cut_before"] == gap
    assert text(tail).encode() == data[tail["offset"] : tail["end"]]  # stream offsets, exact
    back = await window(dash, run_id, before=tail["offset"], length=1000)
    assert back["end"] == win["end"]
    # Search finds a line of the tail at its stream offset.
    wanted = b"%09d " % (len(data) // 100 - 5)
    answer = await dash.http.get(f"{dash.base}/runs/{run_id}/log",
                                 params={"q": wanted.decode().strip()})  # fmt: skip
    html = await answer.text()
    assert f"byte {data.index(wanted)}" in html


@pytest.mark.parametrize(
    "params",
    [{"offset": "-5"}, {"offset": "9" * 40}, {"offset": "abc"}, {"offset": "1e3"},
     {"offset": "\u0663"}, {"length": "0"}, {"length": "-1"}, {"length": "9" * 30},
     {"before": "-1"}, {"before": "9" * 30}, {"before": "x"}, {"q": "\x00\x1b[31m"},
     {"q": "(?:[a-z]+)*$\\"}, {"offset": "", "before": ""}],
)  # fmt: skip
async def test_hostile_window_parameters_get_a_window(dash: Dash, params: dict[str, str]) -> None:
    data = lines(3000)
    run_id = await stored_run(dash, data)
    await dash.login()
    win = await window(dash, run_id, **params)
    assert 0 <= win["offset"] <= win["end"] <= len(data) == win["size"]
    assert text(win).encode() == data[win["offset"] : win["end"]]
    assert win["end"] - win["offset"] <= MAX_WINDOW


@pytest.mark.parametrize(
    ("path", "status"),
    [("/runs/nope/log/stdout/window", 404), ("/runs/{run}/log/passwd/window", 404),
     ("/runs/{run}/log/stdout/window?q=" + "a" * 5_000, 400),
     ("/runs/{run}/log?q=" + "a" * 5_000, 200), ("/runs/{run}/log?q=%00%1B%5B31m", 200),
     ("/runs/{run}/log?q=" + "a" * 10_000, 400),  # over aiohttp's 8190 bytes of a request line
     ("/runs/{run}/log?q=.*&stream=stdout&at=-1", 200),
     ("/runs/{run}/log?q=%ED%A0%80&stream=passwd&at=99999999999999999999", 200),
     ("/runs/{run}/log/stderr/window?offset=0", 200), ("/runs/nope/log?q=x", 404)],
)  # fmt: skip
async def test_hostile_log_requests_never_get_a_500(dash: Dash, path: str, status: int) -> None:
    run_id = await stored_run(dash, lines(100))
    await dash.login()
    answer = await dash.http.get(dash.base + path.replace("{run}", run_id), allow_redirects=False)
    body = await answer.text()
    assert answer.status == status, (path, answer.status, body)
    assert "Traceback" not in body
    if "a" * 5_000 in path and "a" * 10_000 not in path:
        assert "longer than 256 characters" in body
