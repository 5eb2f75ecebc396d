"""Reply messages as the spec's records (dicts with the spec's field names) and task displays."""

from __future__ import annotations

import json
import re
from collections.abc import Mapping
from typing import Any

from easytask.core.models import TASK_FIELDS
from easytask.ctl.render import NONE_MARK
from easytask.rpc.v1 import api_pb2 as pb

Record = dict[str, Any]

DAY_NAMES: tuple[str, ...] = ("MON", "TUE", "WED", "THU", "FRI", "SAT", "SUN")
_BITS = re.compile(r"[01]{7}")


def _opt(value: str) -> str | None:
    """Empty string (proto3 default) -> None."""
    return value or None


def run_to_dict(run: pb.Run, *, transitions: bool = False) -> Record:
    """A run record (spec 8): unknown values and unreached timestamps are None."""
    record: Record = {
        "run_id": run.run_id,
        "tid": run.tid,
        "name": run.name,
        "group": _opt(run.group),
        "group_run_id": _opt(run.group_run_id),
        "instance": run.instance,
        "run_date": run.run_date,
        "scheduled_utc": _opt(run.scheduled_utc),
        "local_time": run.local_time,
        "timezone": run.timezone,
        "attempt": run.attempt,
        "state": run.state,
        "state_code": run.state_code,
        "reason": run.reason,
        "queue": run.queue,
        "agent": _opt(run.agent),
        "host": _opt(run.host),
        "pid": run.pid if run.has_pid else None,
        "return_code": run.return_code if run.has_return_code else None,
        "triggered_at": _opt(run.triggered_at),
        "dispatched_at": _opt(run.dispatched_at),
        "acked_at": _opt(run.acked_at),
        "started_at": _opt(run.started_at),
        "ended_at": _opt(run.ended_at),
        "duration": run.duration if run.has_duration else None,
        "stdout_path": _opt(run.stdout_path),
        "stderr_path": _opt(run.stderr_path),
        "stdout_range": list(run.stdout_range) or None,
        "stderr_range": list(run.stderr_range) or None,
        "forced": run.forced,
        "forced_by": _opt(run.forced_by),
        "alert_status": run.alert_status,
        "created_at": _opt(run.created_at),
        "updated_at": _opt(run.updated_at),
    }
    if transitions:
        record["transitions"] = [
            {
                "from_state": _opt(change.from_state),
                "to_state": change.to_state,
                "at": _opt(change.at),
                "reason": change.reason,
            }
            for change in run.transitions
        ]
    return record


def agent_to_dict(agent: pb.Agent) -> Record:
    return {
        "name": agent.name,
        "status": agent.status,
        "host": agent.host,
        "queues": list(agent.queues),
        "version": agent.version,
        "cpu_percent": agent.cpu_percent,
        "mem_percent": agent.mem_percent,
        "uptime_seconds": agent.uptime_seconds,
        "running": agent.running,
        "pid": agent.pid or None,
        "connected_since": _opt(agent.connected_since),
        "last_seen": _opt(agent.last_seen),
        "running_run_ids": list(agent.running_run_ids),
        "cpu_cores": agent.cpu_cores or None,
        "memory_mb": agent.memory_mb or None,
        "disk_total_mb": agent.disk_total_mb or None,
        "disk_free_mb": agent.disk_free_mb or None,
        "max_runs": agent.max_runs or None,
        "changes": [{"status": c.status, "at": c.at, "reason": c.reason} for c in agent.changes],
    }


def calendar_to_dict(calendar: pb.Calendar) -> Record:
    return {
        "name": calendar.name,
        "kind": calendar.kind,
        "description": calendar.description,
        "entries": calendar.entries,
        "created_by": _opt(calendar.created_by),
        "created_at": _opt(calendar.created_at),
    }


def holiday_to_dict(entry: pb.HolidayEntry) -> Record:
    """A calendar entry (spec 5); generated built-in dates have no id."""
    return {
        "id": entry.id or None,
        "start_date": entry.start_date,
        "end_date": entry.end_date,
        "reason": entry.reason,
        "source": entry.source,
        "created_by": _opt(entry.created_by),
        "created_at": _opt(entry.created_at),
    }


def upcoming_to_dict(entry: pb.UpcomingEntry) -> Record:
    return {
        "tid": entry.tid,
        "name": entry.name,
        "next_run_utc": entry.next_run_utc,
        "local_run": entry.local_run,
        "timezone": entry.timezone,
        "group": _opt(entry.group),
        "queue": entry.queue,
        "note": entry.note,
        "gid": entry.gid,
    }


def health_to_dict(reply: pb.HealthReply) -> Record:
    return {
        "instance": reply.instance,
        "status": reply.status,
        "heartbeat_age": reply.heartbeat_age,
        "started_at": _opt(reply.started_at),
        "version": reply.version,
        "agents_online": reply.agents_online,
        "active_runs": reply.active_runs,
        "triggers_24h": reply.triggers_24h,
        "debug": reply.debug,
        "timezone": reply.timezone,
        "dashboard_url": reply.dashboard_url or None,
    }


def event_to_dict(event: pb.EventRecord) -> Record:
    """An event record (spec 10); ``args`` decoded from its JSON, unreached values None."""
    try:
        args = json.loads(event.args_json) if event.args_json else {}
    except ValueError:
        args = {"raw": event.args_json}
    return {
        "id": event.id,
        "event": event.event,
        "target": _opt(event.target),
        "args": args,
        "status": event.status,
        "message": event.message,
        "origin": event.origin,
        "published_by": event.published_by,
        "created_at": _opt(event.created_at),
        "acked_at": _opt(event.acked_at),
        "acked_by": _opt(event.acked_by),
        **({"results": [adhoc_result_to_dict(r) for r in event.results]} if event.results else {}),
    }


def adhoc_result_to_dict(r: pb.AdhocResult) -> Record:
    """One agent's result of an ad-hoc command; output decoded as UTF-8 (bad bytes replaced)."""
    return {
        "agent": r.agent,
        "host": r.host,
        "run_id": r.run_id,
        "state": r.state,
        "return_code": r.return_code if r.has_return_code else None,
        "reason": _opt(r.reason),
        "pid": r.pid or None,
        "started_at": _opt(r.started_at),
        "ended_at": _opt(r.ended_at),
        "stdout": r.stdout.decode("utf-8", "replace"),
        "stderr": r.stderr.decode("utf-8", "replace"),
        "stdout_cut": r.stdout_cut,
        "stderr_cut": r.stderr_cut,
    }


def stream_to_dict(lines: pb.StreamLines) -> Record:
    return {
        "lines": list(lines.lines),
        "total_lines": lines.total_lines,
        "total_bytes": lines.total_bytes,
        "truncated": lines.truncated,
    }


def parse_task_json(text: str) -> Record:
    """A task JSON string from the server as a dict."""
    value = json.loads(text) if text else {}
    return value if isinstance(value, dict) else {"value": value}


# ---- day_of_week and schedule displays (spec 4.3) ----------------------------------------


def day_of_week_list(bits: str) -> str:
    """``1111100`` -> ``MON,TUE,WED,THU,FRI``; anything else is returned as given."""
    if not _BITS.fullmatch(bits):
        return bits
    return ",".join(day for day, bit in zip(DAY_NAMES, bits, strict=True) if bit == "1")


def day_of_week_compact(bits: str) -> str:
    """``1111100`` -> ``MON-FRI``, ``1010101`` -> ``MON,WED,FRI,SUN``; runs of 3+ days collapse."""
    if not _BITS.fullmatch(bits):
        return bits
    parts: list[str] = []
    i = 0
    while i < 7:
        if bits[i] != "1":
            i += 1
            continue
        j = i
        while j + 1 < 7 and bits[j + 1] == "1":
            j += 1
        if j - i >= 2:
            parts.append(f"{DAY_NAMES[i]}-{DAY_NAMES[j]}")
        else:
            parts.extend(DAY_NAMES[i : j + 1])
        i = j + 1
    return ",".join(parts)


def parse_day_of_week(value: str) -> str:
    """Inline ``--day-of-week``: ``1111100`` as is; ``MON-FRI`` or ``mon,wed,fri`` to bits.

    Anything not understood is returned unchanged so the server reports it in its own words.
    """
    text = value.strip()
    if _BITS.fullmatch(text):
        return text
    days = [False] * 7
    for part in text.upper().split(","):
        ends = [p.strip()[:3] for p in part.split("-")]
        if not 1 <= len(ends) <= 2 or any(e not in DAY_NAMES for e in ends):
            return value
        first, last = DAY_NAMES.index(ends[0]), DAY_NAMES.index(ends[-1])
        if last < first:
            return value
        for k in range(first, last + 1):
            days[k] = True
    return "".join("1" if d else "0" for d in days)


def schedule_display(task: Mapping[str, Any]) -> str:
    """Schedule column form: ``MON-FRI 08:30``, ``last friday 18:00``,
    ``MON-SUN 09:00-17:00 every 60m``; grouped tasks follow their group: ``(group)``."""
    if task.get("task_group"):
        return "(group)"
    days = ""
    if task.get("day_of_week"):
        days = day_of_week_compact(str(task["day_of_week"]))
    elif task.get("ordinal_day"):
        days = re.sub(r"\s+of every month\s*$", "", " ".join(str(task["ordinal_day"]).split()))
    times = ""
    if task.get("trigger_times"):
        times = str(task["trigger_times"])
    elif task.get("run_frequency"):
        parts = str(task["run_frequency"]).split("-")
        if len(parts) == 3:
            times = f"{parts[0]}-{parts[1]} every {parts[2]}m"
        else:
            times = str(task["run_frequency"])
    return f"{days} {times}".strip()


TASK_LABELS: dict[str, str] = {
    "tid": "TID",
    "name": "Name",
    "description": "Description",
    "task_owner": "Task Owner",
    "team": "Team",
    "cmd": "Command",
    "run_on_host": "Run On Host",
    "run_as_user": "Run As User",
    "stdout": "Stdout",
    "stderr": "Stderr",
    "active": "Active",
    "instance": "Instance",
    "task_group": "Task Group",
    "timezone": "Timezone",
    "day_of_week": "Day of Week",
    "ordinal_day": "Ordinal Day",
    "trigger_times": "Trigger Times",
    "run_frequency": "Run Frequency",
    "calendar": "Calendar",
    "dependency": "Dependency",
    "profile": "Profile",
    "max_run_time": "Max Run Time",
    "retry_attempts": "Retry Attempts",
    "retry_delay": "Retry Delay",
    "task_accept_expiry_time": "Task Accept Expiry Time",
    "misfire_policy": "Misfire Policy",
    "misfire_grace": "Misfire Grace",
    "alert": "Alert",
}


def task_fields(task: Mapping[str, Any]) -> list[tuple[str, object]]:
    """Every field of the task in spec order (then any others), labelled for a panel."""
    keys = [*TASK_FIELDS, *(k for k in task if k not in TASK_FIELDS)]
    rows: list[tuple[str, object]] = []
    for key in keys:
        value = task.get(key, NONE_MARK)
        if key == "day_of_week" and isinstance(value, str):
            value = day_of_week_list(value)
        elif isinstance(value, dict | list):
            value = json.dumps(value, ensure_ascii=False)
        rows.append((TASK_LABELS.get(key, key), value))
    return rows


def user_to_dict(user: pb.User) -> Record:
    return {
        "username": user.username,
        "email": user.email,
        "first_name": user.first_name,
        "last_name": user.last_name,
        "role": user.role,
        "active": user.active,
        "created_at": _opt(user.created_at),
        "updated_at": _opt(user.updated_at),
    }
