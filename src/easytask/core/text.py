"""Text hygiene: what a stored string may hold, how a bad value is quoted, how JSON is read.

Every text that reaches the store, an agent or an error message passes these rules: valid
Unicode scalar text (no lone surrogates, which no UTF-8 encoder accepts), no NUL or other
control characters (tab, newline and carriage return only where a field allows lines), JSON
documents bounded in size and nesting before they are parsed in full.
"""

from __future__ import annotations

import json
import re
from array import array
from itertools import accumulate
from typing import Any

from easytask.core.errors import FieldError, ValidationError

MAX_DOCUMENT_BYTES = 1024 * 1024
MAX_DEPTH = 32
QUOTE_LIMIT = 64

# C0 controls and DEL; tab, newline and carriage return are allowed where lines are.
_CONTROL = re.compile(r"[\x00-\x1f\x7f]")
_CONTROL_NOT_LINES = re.compile(r"[\x00-\x08\x0b\x0c\x0e-\x1f\x7f]")
_SURROGATE = re.compile(r"[\ud800-\udfff]")
_ANY_SUSPECT = re.compile(r"[\x00-\x1f\x7f\ud800-\udfff]")
# A JSON string literal (escapes included), and what is left of a document without them.
_JSON_STRING = re.compile(r'"(?:[^"\\]|\\.)*"', re.DOTALL)
_NOT_BRACKET = re.compile(r"[^\[\]{}]+")
_STEPS = bytes.maketrans(b"[{]}", b"\x01\x01\xff\xff")  # +1 +1 -1 -1 as signed bytes


def quote(text: str, limit: int = QUOTE_LIMIT) -> str:
    """``text`` as a short, printable, ASCII-safe quotation for an error message.

    Control characters and lone surrogates are escaped (``\\x00``, ``\\udfff``); a value
    longer than ``limit`` characters is cut and marked with ``…``.
    """
    cut = len(text) > limit
    shown = repr(text[:limit])
    if not shown.isascii():
        shown = shown.encode("ascii", "backslashreplace").decode("ascii")
    return shown + ("…" if cut else "")


def shown(text: str, limit: int = QUOTE_LIMIT) -> str:
    """``text`` as it is when short and printable, else ``quote(text, limit)``."""
    if len(text) <= limit and text.isprintable():  # surrogates and controls are not
        return text
    return quote(text, limit)


def text_problem(value: str, *, lines: bool = False) -> str | None:
    """What makes ``value`` unfit to store, or None.

    Args:
        value: The text.
        lines: True where tabs, newlines and carriage returns are allowed (commands, free
            text); every other control character is refused everywhere.
    """
    bad = _SURROGATE.search(value)
    if bad is not None:
        char = ord(bad.group())
        return f"must be valid Unicode text (lone surrogate U+{char:04X} at {bad.start()})"
    bad = (_CONTROL_NOT_LINES if lines else _CONTROL).search(value)
    if bad is not None:
        char = ord(bad.group())
        what = "NUL" if char == 0 else f"control character U+{char:04X}"
        return f"must not contain {what} (at {bad.start()})"
    return None


def may_be_unfit(value: str) -> bool:
    """A quick test: False means ``text_problem`` finds nothing, whatever ``lines`` is."""
    return _ANY_SUSPECT.search(value) is not None


def nested_problem(value: object, *, lines: bool = True) -> str | None:
    """The first text problem in a JSON value's keys and strings (iterative, any depth)."""
    todo = [value]
    while todo:
        item = todo.pop()
        if isinstance(item, str):
            texts: list[Any] = [item]
        elif isinstance(item, dict):
            texts = list(item)
            todo.extend(item.values())
        elif isinstance(item, list):
            todo.extend(item)
            continue
        else:
            continue
        for text in texts:
            problem = text_problem(text, lines=lines) if isinstance(text, str) else None
            if problem is not None:
                return problem
    return None


def safe_key(key: str) -> bool:
    """Whether a JSON key can name a field in an error message as it is."""
    return 0 < len(key) <= QUOTE_LIMIT and key.isprintable()


def parse_json(
    text: str, field: str, *, max_bytes: int = MAX_DOCUMENT_BYTES, max_depth: int = MAX_DEPTH
) -> Any:
    """Decode a JSON document after checking its size and nesting.

    Args:
        text: The document.
        field: What the document is (``task``, ``group``, ``file``): the field named by errors.
        max_bytes: Largest document accepted, in UTF-8 bytes (checked before any parsing).
        max_depth: Deepest nesting of arrays and objects accepted (checked before parsing).

    Raises:
        ValidationError: naming ``field``: too large, too deep or not valid JSON.
    """
    if len(text) > max_bytes or len(text.encode("utf-8", "surrogatepass")) > max_bytes:
        raise ValidationError([FieldError(field, f"{field} must be at most {max_bytes} bytes")])
    if _depth_exceeds(text, max_depth):
        raise _too_deep(field, max_depth)
    try:
        return json.loads(text)
    except json.JSONDecodeError as exc:
        raise ValidationError([FieldError(field, f"not valid JSON ({exc.msg})")]) from exc
    except RecursionError as exc:  # thousands of brackets never closed
        raise _too_deep(field, max_depth) from exc


def _too_deep(field: str, max_depth: int) -> ValidationError:
    return ValidationError([FieldError(field, f"{field} nests deeper than {max_depth} levels")])


def _depth_exceeds(text: str, max_depth: int) -> bool:
    """Whether the brackets outside string literals nest deeper than ``max_depth``.

    One linear pass: brackets become +1/-1 and the running sum is the depth. Unbalanced
    brackets are the JSON parser's to report.
    """
    if "[" not in text and "{" not in text:
        return False
    brackets = _NOT_BRACKET.sub("", _JSON_STRING.sub("", text))
    steps = array("b", brackets.encode("ascii").translate(_STEPS))
    return max(accumulate(steps), default=0) > max_depth
