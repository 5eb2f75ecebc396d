"""How a run is a row of the ``runs`` table, and how RunFilter becomes a WHERE clause."""

from __future__ import annotations

from typing import Any

import aiosqlite

from easytask.core.models import Run
from easytask.core.records import RunFilter
from easytask.core.runid import from_ms, iso_utc, parse_iso_utc, to_ms
from easytask.core.states import RunState

RUN_COLUMNS = (
    "run_id, tid, name, instance, run_date, scheduled_ms, local_time, timezone, attempt, state, "
    "final, reason, queue, grp, group_run_id, agent, host, pid, return_code, triggered_at, "
    "dispatched_at, acked_at, started_at, ended_at, stdout_path, stderr_path, stdout_start, "
    "stdout_end, stderr_start, stderr_end, forced, forced_by, alert_status, created_at, updated_at"
)
RUN_NAMES = [c.strip() for c in RUN_COLUMNS.split(",")]
UPSERT_RUN = (
    f"INSERT INTO runs ({RUN_COLUMNS}) VALUES ({', '.join('?' * len(RUN_NAMES))}) "
    "ON CONFLICT(run_id) DO UPDATE SET "
    + ", ".join(f"{c}=excluded.{c}" for c in RUN_NAMES if c != "run_id")
)
INSERT_CHANGE = (
    "INSERT INTO run_transitions (run_id, from_state, to_state, at, reason) VALUES (?, ?, ?, ?, ?)"
)


def run_row(run: Run) -> tuple[Any, ...]:
    so = run.stdout_range or (None, None)
    se = run.stderr_range or (None, None)
    return (
        run.run_id,
        run.tid,
        run.name,
        run.instance,
        run.run_date,
        to_ms(run.scheduled_utc),
        run.local_time,
        run.timezone,
        run.attempt,
        run.state.value,
        int(run.state.final),
        run.reason,
        run.queue,
        run.group,
        run.group_run_id,
        run.agent,
        run.host,
        run.pid,
        run.return_code,
        iso_utc(run.triggered_at) or None,
        iso_utc(run.dispatched_at) or None,
        iso_utc(run.acked_at) or None,
        iso_utc(run.started_at) or None,
        iso_utc(run.ended_at) or None,
        run.stdout_path,
        run.stderr_path,
        so[0],
        so[1],
        se[0],
        se[1],
        int(run.forced),
        run.forced_by,
        run.alert_status,
        iso_utc(run.created_at),
        iso_utc(run.updated_at),
    )


def _range(start: int | None, end: int | None) -> tuple[int, int] | None:
    return None if start is None or end is None else (start, end)


def row_run(row: aiosqlite.Row) -> Run:
    ts = parse_iso_utc
    created = ts(row["created_at"])
    updated = ts(row["updated_at"])
    assert created is not None and updated is not None
    return Run(
        run_id=row["run_id"],
        tid=row["tid"],
        name=row["name"],
        instance=row["instance"],
        run_date=row["run_date"],
        scheduled_utc=from_ms(row["scheduled_ms"]),
        local_time=row["local_time"],
        timezone=row["timezone"],
        attempt=row["attempt"],
        state=RunState(row["state"]),
        queue=row["queue"],
        created_at=created,
        updated_at=updated,
        reason=row["reason"],
        group=row["grp"],
        group_run_id=row["group_run_id"],
        agent=row["agent"],
        host=row["host"],
        pid=row["pid"],
        return_code=row["return_code"],
        triggered_at=ts(row["triggered_at"] or ""),
        dispatched_at=ts(row["dispatched_at"] or ""),
        acked_at=ts(row["acked_at"] or ""),
        started_at=ts(row["started_at"] or ""),
        ended_at=ts(row["ended_at"] or ""),
        stdout_path=row["stdout_path"],
        stderr_path=row["stderr_path"],
        stdout_range=_range(row["stdout_start"], row["stdout_end"]),
        stderr_range=_range(row["stderr_start"], row["stderr_end"]),
        forced=bool(row["forced"]),
        forced_by=row["forced_by"],
        alert_status=row["alert_status"],
    )


def run_where(flt: RunFilter) -> tuple[str, list[Any]]:
    clauses: list[str] = []
    params: list[Any] = []
    if flt.state:
        clauses.append("state = ?")
        params.append(flt.state.upper())
    if flt.search:
        clauses.append("name LIKE ? ESCAPE '\\'")
        escaped = flt.search.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")
        params.append(f"%{escaped}%")
    if flt.tid:
        clauses.append("tid = ?")
        params.append(flt.tid)
    if flt.run_date:
        clauses.append("run_date = ?")
        params.append(flt.run_date)
    if flt.since is not None:
        clauses.append("(created_at >= ? OR final = 0)")
        params.append(iso_utc(flt.since))
    if flt.date_from:
        clauses.append("run_date >= ?")
        params.append(flt.date_from)
    if flt.date_to:
        clauses.append("run_date <= ?")
        params.append(flt.date_to)
    if flt.agent:
        clauses.append("agent = ?")
        params.append(flt.agent)
    if flt.group_run_prefix:
        # A range, not LIKE: the index on group_run_id serves it and no character is special.
        clauses.append("group_run_id >= ? AND group_run_id < ?")
        params.extend([flt.group_run_prefix, flt.group_run_prefix + "\U0010ffff"])
    return ("WHERE " + " AND ".join(clauses)) if clauses else "", params
