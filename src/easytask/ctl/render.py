"""Output of easytaskctl: rich tables and panels, JSON, a small YAML emitter, value formats."""

from __future__ import annotations

import json
import math
import re
from collections.abc import Callable, Collection, Mapping, Sequence
from typing import IO, Literal

from rich import box
from rich.console import Console, RenderableType
from rich.panel import Panel
from rich.table import Table
from rich.text import Text

OutputFormat = Literal["table", "json", "yaml"]
OUTPUT_FORMATS: tuple[str, ...] = ("table", "json", "yaml")

# Wide enough that run ids, paths and timestamps come out whole in pipes and tests.
PIPE_WIDTH = 200
NONE_MARK = "—"


def make_console(file: IO[str]) -> Console:
    """A console on ``file``: terminal width on a TTY, a generous fixed width otherwise."""
    tty = file.isatty()
    return Console(
        file=file,
        width=None if tty else PIPE_WIDTH,
        force_terminal=None if tty else False,
        highlight=False,
        emoji=False,
        markup=False,
    )


# ---- value formats -------------------------------------------------------------------------


def format_duration(seconds: float | None) -> str:
    """Human duration: ``1.2s`` under a minute, else ``5m 32s``, ``1h 2m 3s``, ``2d 3h 0m 5s``."""
    if seconds is None or math.isnan(seconds):
        return ""
    if seconds < 0:
        seconds = 0.0
    if round(seconds, 1) < 60:
        return f"{seconds:.1f}s"
    total = int(seconds + 0.5)
    days, rest = divmod(total, 86400)
    hours, rest = divmod(rest, 3600)
    minutes, secs = divmod(rest, 60)
    parts: list[str] = []
    if days:
        parts.append(f"{days}d")
    if days or hours:
        parts.append(f"{hours}h")
    parts.append(f"{minutes}m")
    parts.append(f"{secs}s")
    return " ".join(parts)


def format_timestamp(value: str | None) -> str:
    """``2025-05-09T12:30:00.055Z`` -> ``2025-05-09 12:30:00`` (UTC); empty stays empty."""
    if not value:
        return ""
    match = re.match(r"(\d{4}-\d{2}-\d{2})T(\d{2}:\d{2}:\d{2})", value)
    if match is None:
        return value
    return f"{match.group(1)} {match.group(2)}"


def page_count(total: int, per_page: int) -> int:
    """Number of pages for ``total`` items; at least 1."""
    if per_page <= 0 or total <= 0:
        return 1
    return (total + per_page - 1) // per_page


def page_line(page: int, per_page: int, total: int) -> str:
    """``Page 1 of 3 (52 total items)``."""
    return f"Page {max(page, 1)} of {page_count(total, per_page)} ({total} total items)"


def cell(value: object) -> str:
    """Table cell text: None is empty, bools are Y/N, everything else ``str``."""
    if value is None:
        return ""
    if isinstance(value, bool):
        return "Y" if value else "N"
    if isinstance(value, list | tuple):
        return ",".join(cell(v) for v in value)
    return str(value)


# ---- rich renderables ----------------------------------------------------------------------


def render_table(
    headers: Sequence[str],
    rows: Sequence[Sequence[object]],
    *,
    no_wrap: Collection[str] = (),
    title: str | None = None,
) -> Table:
    """A table whose cells are plain text (never rich markup)."""
    table = Table(box=box.SIMPLE_HEAVY, show_edge=False, title=title, title_justify="left")
    for header in headers:
        table.add_column(header, no_wrap=header in no_wrap, overflow="fold")
    for row in rows:
        table.add_row(*(Text(cell(v)) for v in row))
    return table


def render_fields(title: str, pairs: Sequence[tuple[str, object]]) -> Panel:
    """A panel of ``label  value`` lines."""
    grid = Table.grid(padding=(0, 2))
    grid.add_column(style="bold", no_wrap=True)
    grid.add_column(overflow="fold")
    for label, value in pairs:
        grid.add_row(Text(label), Text(cell(value)))
    return Panel(grid, title=Text(title), title_align="left", box=box.ROUNDED, expand=False)


def render_text_panel(title: str, body: str, subtitle: str | None = None) -> Panel:
    """A panel holding ``body`` verbatim (log output), never narrower than its title and
    subtitle (a short body must not cut ``Page 1 of 1 (0 total lines)``)."""
    text = Text(body)
    labels = [Text(title), *([Text(subtitle)] if subtitle else [])]
    # Borders and padding take 4 columns; a label also needs a rule on each side.
    width = max(_widest_line(text) + 4, *(label.cell_len + 6 for label in labels))
    return Panel(
        text,
        title=labels[0],
        title_align="left",
        subtitle=labels[1] if subtitle else None,
        subtitle_align="left",
        box=box.ROUNDED,
        expand=True,  # to ``width`` (at most the terminal's), which fits the labels
        width=width,
    )


def _widest_line(text: Text) -> int:
    return max((line.cell_len for line in text.split("\n")), default=0)


# ---- structured output ---------------------------------------------------------------------


def to_json(data: object) -> str:
    """Pretty JSON, UTF-8 kept readable."""
    return json.dumps(data, indent=2, ensure_ascii=False)


def emit(
    console: Console,
    fmt: str,
    data: object,
    table: Callable[[], Sequence[RenderableType | str]],
) -> None:
    """Write ``data`` as JSON or YAML, or the renderables ``table()`` builds for table output."""
    if fmt == "json":
        console.file.write(to_json(data) + "\n")
    elif fmt == "yaml":
        console.file.write(to_yaml(data))
    else:
        for item in table():
            if isinstance(item, str):
                console.file.write(item + "\n")
            else:
                console.print(item)
    console.file.flush()


# ---- YAML ----------------------------------------------------------------------------------
# A block-style emitter for JSON-like data. Strings are left plain only when no YAML 1.1 or 1.2
# reader could take them for anything else (numbers, booleans, null, dates, times, indicators);
# everything else is double-quoted with escapes.

_PLAIN = re.compile(r"[A-Za-z_/][A-Za-z0-9_./@+()=,;:-]*(?: [A-Za-z0-9_./@+()=,;:-]+)*")
_RESERVED = frozenset({"null", "true", "false", "yes", "no", "on", "off", "y", "n"})
_ESCAPES = {
    '"': '\\"',
    "\\": "\\\\",
    "\n": "\\n",
    "\t": "\\t",
    "\r": "\\r",
    "\0": "\\0",
    "\b": "\\b",
    "\f": "\\f",
    "\x1b": "\\e",
}


def to_yaml(data: object) -> str:
    """YAML text for dicts, lists and scalars, ending with a newline."""
    return "\n".join(_yaml_block(data)) + "\n"


def _is_block(value: object) -> bool:
    return isinstance(value, Mapping | list | tuple) and len(value) > 0


def _yaml_block(value: object) -> list[str]:
    if isinstance(value, Mapping) and value:
        lines: list[str] = []
        for key, item in value.items():
            name = yaml_scalar(key)
            if _is_block(item):
                lines.append(f"{name}:")
                lines.extend("  " + line for line in _yaml_block(item))
            else:
                lines.append(f"{name}: {yaml_scalar(item)}")
        return lines
    if isinstance(value, list | tuple) and value:
        lines = []
        for item in value:
            if _is_block(item):
                sub = _yaml_block(item)
                lines.append("- " + sub[0])
                lines.extend("  " + line for line in sub[1:])
            else:
                lines.append(f"- {yaml_scalar(item)}")
        return lines
    return [yaml_scalar(value)]


def yaml_scalar(value: object) -> str:
    """One YAML scalar (or ``{}`` / ``[]`` for empty collections)."""
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int):
        return str(value)
    if isinstance(value, float):
        return _yaml_float(value)
    if isinstance(value, Mapping):
        return "{}"
    if isinstance(value, list | tuple):
        return "[]"
    text = str(value)
    if _is_plain(text):
        return text
    return _quote(text)


def _yaml_float(value: float) -> str:
    if math.isnan(value):
        return ".nan"
    if math.isinf(value):
        return ".inf" if value > 0 else "-.inf"
    text = repr(value)
    if "e" in text and "." not in text:
        # YAML 1.1 readers need the dot: 1e+20 -> 1.0e+20
        mantissa, exponent = text.split("e")
        text = f"{mantissa}.0e{exponent}"
    return text


def _is_plain(text: str) -> bool:
    if _PLAIN.fullmatch(text) is None:
        return False
    if text.lower() in _RESERVED:
        return False
    return ": " not in text and not text.endswith(":")


def _quote(text: str) -> str:
    out = ['"']
    for ch in text:
        if ch in _ESCAPES:
            out.append(_ESCAPES[ch])
        elif ch == " " or ch.isprintable():
            out.append(ch)
        else:
            code = ord(ch)
            if code <= 0xFF:
                out.append(f"\\x{code:02x}")
            elif code <= 0xFFFF:
                out.append(f"\\u{code:04x}")
            else:
                out.append(f"\\U{code:08x}")
    out.append('"')
    return "".join(out)
