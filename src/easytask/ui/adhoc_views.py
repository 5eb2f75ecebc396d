"""Ad-hoc commands on the dashboard (spec 10 ADHOC): the form on /events with its checks placed
next to their fields, and an ADHOC event's results per agent, followed live until all are final.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from typing import Any

from aiohttp import web

from easytask.core.adhoc import (
    DEFAULT_MAX_RUN_TIME,
    MAX_RUN_TIME,
    AdhocRequest,
    check_command,
)
from easytask.core.authz import Action, Caller
from easytask.core.errors import ValidationError
from easytask.core.records import AdhocResult, AgentView
from easytask.scheduler.app import SchedulerApp
from easytask.ui.forms import can, text_error, text_of
from easytask.ui.render import fragment, when
from easytask.ui.views import APP_KEY, digits

EVENT = "ADHOC"
SELECTIONS = (("agents", "Agents named"), ("queues", "Agents serving queues"),
              ("all", "All connected agents"))  # fmt: skip
LABELS = {
    "name": "Name",
    "cmd": "Command",
    "select": "Run on",
    "agents": "Agent names",
    "queues": "Queues",
    "stdout": "Stdout file",
    "stderr": "Stderr file",
    "max_run_time": "Max run time (seconds)",
    "run_as_user": "Run as user",
}
HELP = {
    "name": "Letters, digits, _ - . e.g. disk_check",
    "agents": "Comma-separated, e.g. a1,a2",
    "queues": "Comma-separated: every connected agent serving one of them",
    "stdout": "On each agent; default /tmp/adhoc.out",
    "stderr": "On each agent; default /tmp/adhoc.err",
    "max_run_time": f"1 to {MAX_RUN_TIME}; killed after it",
    "run_as_user": "Default: the agent's own user",
}
FIELDS = tuple(LABELS)
MAX_LIST = 1024  # characters of the agents or queues field
_SPLIT = re.compile(r"[,\s]+")


def adhoc_form(caller: Caller, agents: list[AgentView]) -> dict[str, Any] | None:
    """What the form offers (the connected agents and their queues), or None when the
    caller's role may not run ad-hoc commands (the form is not shown)."""
    if not can(caller, Action.ADHOC):
        return None
    online = [a.record for a in agents if a.online]
    return {
        "selections": SELECTIONS,
        "labels": LABELS,
        "help": HELP,
        "agents": sorted(a.name for a in online),
        "queues": sorted({q for a in online for q in a.queues}),
        "default_max_run_time": DEFAULT_MAX_RUN_TIME,
    }


def names_of(text: str) -> tuple[str, ...]:
    return tuple(dict.fromkeys(n for n in _SPLIT.split(text) if n))


def adhoc_request(form: Mapping[str, Any]) -> tuple[AdhocRequest, dict[str, str], dict[str, str]]:
    """The request a submitted form describes, its field errors (nothing is submitted with
    any) and the values to show again."""
    values = {k: text_of(form, k) for k in FIELDS}
    errors: dict[str, str] = {}
    max_run_time = DEFAULT_MAX_RUN_TIME
    typed = values["max_run_time"]
    if typed:
        if digits(typed) and len(typed) <= 9 and int(typed) > 0:
            max_run_time = int(typed)
        else:
            errors["max_run_time"] = f"{LABELS['max_run_time']} must be 1 to {MAX_RUN_TIME}"
    try:
        check_command(values["name"], values["cmd"], values["stdout"], values["stderr"],
                      max_run_time, values["run_as_user"])  # fmt: skip
    except ValidationError as exc:
        for e in exc.errors:
            key = e.field if e.field in LABELS else "name"
            errors[key] = f"{errors[key]}; {e.message}" if key in errors else e.message
    select = values["select"]
    chosen: dict[str, tuple[str, ...]] = {"agents": (), "queues": ()}
    if select not in ("agents", "queues", "all"):
        errors["select"] = "choose agents named, agents serving queues, or all connected agents"
    elif select != "all":
        label = LABELS[select]
        problem = text_error(label, values[select], MAX_LIST)
        chosen[select] = names_of(values[select]) if problem is None else ()
        if problem is not None:
            errors[select] = problem
        elif not chosen[select]:
            errors[select] = f"{label}: give at least one, or choose another way to select"
    req = AdhocRequest(values["name"], values["cmd"], queues=chosen["queues"],
                       agents=chosen["agents"], all=select == "all", stdout=values["stdout"],
                       stderr=values["stderr"], max_run_time=max_run_time,
                       run_as_user=values["run_as_user"], origin="UI")  # fmt: skip
    return req, errors, values


# ----- the results of one event -----


def text(data: bytes) -> str:
    """Output as text: hostile bytes stay text (the templates escape it), a character cut
    by the 64 KiB tail becomes U+FFFD."""
    return data.decode("utf-8", "replace")


def result_view(r: AdhocResult) -> dict[str, Any]:
    return {
        "agent": r.agent,
        "host": r.host,
        "run_id": r.run_id,
        "state": r.state,
        "final": r.final,
        "return_code": "" if r.return_code is None else str(r.return_code),
        "reason": r.reason,
        "pid": "" if r.pid is None else str(r.pid),
        "started": when(r.started_at),
        "ended": when(r.ended_at),
        "streams": [("stdout", "Stdout", text(r.stdout), r.stdout_cut),
                    ("stderr", "Stderr", text(r.stderr), r.stderr_cut)],
    }  # fmt: skip


async def results_context(app: SchedulerApp, event_id: int) -> dict[str, Any]:
    results = await app.adhoc_results(event_id)
    return {"results": [result_view(r) for r in results],
            "all_final": all(r.final for r in results)}  # fmt: skip


async def render_results(webapp: web.Application, event_id: str) -> tuple[str, bool]:
    """The live fragment of an ADHOC event's results, and whether they are all final."""
    ctx = await results_context(webapp[APP_KEY], int(event_id))
    return fragment(webapp, "_adhoc_results.html", **ctx), ctx["all_final"]
