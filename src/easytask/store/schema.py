"""SQLite schema and its migrations, applied in order inside one transaction each."""

from __future__ import annotations

# A deleted task's tid or group's gid, kept so it is never handed out again (spec 12).
RETIRE_SQL = "INSERT OR IGNORE INTO retired_ids (kind, id) VALUES (?, ?)"

MIGRATIONS: tuple[str, ...] = (
    # 1: tasks, runs, transitions, output, agents, events, meta
    """
    CREATE TABLE meta (key TEXT PRIMARY KEY, value TEXT NOT NULL);
    CREATE TABLE tasks (
        tid INTEGER PRIMARY KEY,
        name TEXT NOT NULL UNIQUE,
        definition TEXT NOT NULL,
        created_at TEXT NOT NULL,
        updated_at TEXT NOT NULL
    );
    CREATE TABLE runs (
        run_id TEXT PRIMARY KEY,
        tid INTEGER NOT NULL,
        name TEXT NOT NULL,
        instance TEXT NOT NULL,
        run_date TEXT NOT NULL,
        scheduled_ms INTEGER NOT NULL,
        local_time TEXT NOT NULL,
        timezone TEXT NOT NULL,
        attempt INTEGER NOT NULL,
        state TEXT NOT NULL,
        final INTEGER NOT NULL,
        reason TEXT NOT NULL DEFAULT '',
        queue TEXT NOT NULL,
        grp TEXT,
        group_run_id TEXT,
        agent TEXT,
        host TEXT,
        pid INTEGER,
        return_code INTEGER,
        triggered_at TEXT,
        dispatched_at TEXT,
        acked_at TEXT,
        started_at TEXT,
        ended_at TEXT,
        stdout_path TEXT,
        stderr_path TEXT,
        stdout_start INTEGER,
        stdout_end INTEGER,
        stderr_start INTEGER,
        stderr_end INTEGER,
        forced INTEGER NOT NULL DEFAULT 0,
        forced_by TEXT,
        alert_status TEXT NOT NULL DEFAULT 'none',
        created_at TEXT NOT NULL,
        updated_at TEXT NOT NULL
    );
    CREATE INDEX runs_by_tid ON runs (tid, scheduled_ms);
    CREATE INDEX runs_by_created ON runs (created_at);
    CREATE INDEX runs_live ON runs (final) WHERE final = 0;
    CREATE TABLE run_transitions (
        id INTEGER PRIMARY KEY,
        run_id TEXT NOT NULL,
        from_state TEXT,
        to_state TEXT NOT NULL,
        at TEXT NOT NULL,
        reason TEXT NOT NULL DEFAULT ''
    );
    CREATE INDEX run_transitions_by_run ON run_transitions (run_id, id);
    CREATE TABLE run_output (
        run_id TEXT NOT NULL,
        stream TEXT NOT NULL,
        offset INTEGER NOT NULL,
        data BLOB NOT NULL,
        PRIMARY KEY (run_id, stream, offset)
    ) WITHOUT ROWID;
    CREATE TABLE agents (
        name TEXT PRIMARY KEY,
        host TEXT NOT NULL,
        queues TEXT NOT NULL,
        version TEXT NOT NULL,
        pid INTEGER,
        cpu_cores INTEGER,
        memory_mb INTEGER,
        connected_since TEXT,
        last_seen TEXT
    );
    CREATE TABLE events (
        id INTEGER PRIMARY KEY AUTOINCREMENT,
        event TEXT NOT NULL,
        target TEXT NOT NULL DEFAULT '',
        args TEXT NOT NULL DEFAULT '{}',
        status TEXT NOT NULL,
        message TEXT NOT NULL DEFAULT '',
        origin TEXT NOT NULL DEFAULT 'API',
        published_by TEXT NOT NULL DEFAULT '',
        created_at TEXT NOT NULL,
        acked_at TEXT,
        acked_by TEXT
    );
    CREATE INDEX events_by_created ON events (created_at);
    """,
    # 2: start-up looks up runs by scheduled instant across tasks (misfire detection)
    """
    CREATE INDEX runs_by_scheduled ON runs (scheduled_ms);
    """,
    # 3: user holiday calendars and their entries (entries may also name a built-in calendar).
    # AUTOINCREMENT: an entry id is never reused, so a stale id cannot remove another entry.
    """
    CREATE TABLE calendars (
        name TEXT PRIMARY KEY,
        description TEXT NOT NULL DEFAULT '',
        created_by TEXT NOT NULL DEFAULT '',
        created_at TEXT NOT NULL
    );
    CREATE TABLE calendar_entries (
        id INTEGER PRIMARY KEY AUTOINCREMENT,
        calendar TEXT NOT NULL,
        start_date TEXT NOT NULL,
        end_date TEXT NOT NULL,
        reason TEXT NOT NULL,
        created_by TEXT NOT NULL DEFAULT '',
        created_at TEXT NOT NULL
    );
    CREATE INDEX calendar_entries_by_calendar ON calendar_entries (calendar, start_date);
    """,
    # 4: operator freezes, task groups and group occurrences (issue: groups and events)
    """
    CREATE TABLE freezes (
        id INTEGER PRIMARY KEY AUTOINCREMENT,
        tid INTEGER NOT NULL,
        run_date TEXT NOT NULL,
        trigger_time TEXT NOT NULL DEFAULT '',
        created_by TEXT NOT NULL DEFAULT '',
        created_at TEXT NOT NULL,
        UNIQUE (tid, run_date, trigger_time)
    );
    CREATE TABLE task_groups (
        gid INTEGER PRIMARY KEY,
        name TEXT NOT NULL UNIQUE,
        definition TEXT NOT NULL,
        created_at TEXT NOT NULL,
        updated_at TEXT NOT NULL
    );
    CREATE TABLE group_runs (
        group_run_id TEXT PRIMARY KEY,
        gid INTEGER NOT NULL,
        name TEXT NOT NULL,
        run_date TEXT NOT NULL,
        local_time TEXT NOT NULL,
        scheduled_ms INTEGER NOT NULL,
        state TEXT NOT NULL,
        final INTEGER NOT NULL,
        reason TEXT NOT NULL DEFAULT '',
        forced INTEGER NOT NULL DEFAULT 0,
        started_at TEXT,
        ended_at TEXT,
        created_at TEXT NOT NULL,
        updated_at TEXT NOT NULL
    );
    CREATE INDEX group_runs_by_gid ON group_runs (gid, scheduled_ms);
    CREATE INDEX group_runs_live ON group_runs (final) WHERE final = 0;
    CREATE INDEX runs_by_group_run ON runs (group_run_id);
    """,
    # 5: accounts (spec 14): users with their Argon2id password hash, and login tokens kept
    # only as SHA-256 hashes
    """
    CREATE TABLE users (
        username TEXT PRIMARY KEY,
        email TEXT NOT NULL DEFAULT '',
        first_name TEXT NOT NULL DEFAULT '',
        last_name TEXT NOT NULL DEFAULT '',
        role TEXT NOT NULL,
        active INTEGER NOT NULL DEFAULT 1,
        password_hash TEXT NOT NULL,
        created_at TEXT NOT NULL,
        updated_at TEXT NOT NULL
    );
    CREATE TABLE auth_tokens (
        token_hash TEXT PRIMARY KEY,
        username TEXT NOT NULL,
        kind TEXT NOT NULL,
        created_at TEXT NOT NULL,
        expires_at TEXT NOT NULL
    );
    CREATE INDEX auth_tokens_by_user ON auth_tokens (username);
    """,
    # 6: retired ids (spec 12): a tid or gid once used is never handed out again. Backfilled
    # from the history of tasks and groups deleted before this table existed.
    """
    CREATE TABLE retired_ids (
        kind TEXT NOT NULL,
        id INTEGER NOT NULL,
        PRIMARY KEY (kind, id)
    );
    INSERT OR IGNORE INTO retired_ids (kind, id)
        SELECT DISTINCT 'task', tid FROM runs WHERE tid NOT IN (SELECT tid FROM tasks);
    INSERT OR IGNORE INTO retired_ids (kind, id)
        SELECT DISTINCT 'group', gid FROM group_runs
        WHERE gid NOT IN (SELECT gid FROM task_groups);
    """,
    # 7: the scheduler's own lifecycle (`scheduler logs`): starts, clean stops, restarts and
    # crashes, with host and pid. AUTOINCREMENT: an id is never reused.
    """
    CREATE TABLE IF NOT EXISTS scheduler_log (
        id INTEGER PRIMARY KEY AUTOINCREMENT,
        action TEXT NOT NULL,
        host TEXT NOT NULL,
        pid INTEGER NOT NULL,
        message TEXT NOT NULL DEFAULT '',
        created_at TEXT NOT NULL
    );
    """,
    # 8: the agent fleet (issue 12): ONLINE/OFFLINE changes, per-agent tokens (hashed), and
    # each agent's result of an ad-hoc command (last 64 KiB of each stream).
    """
    CREATE TABLE IF NOT EXISTS agent_changes (
        id INTEGER PRIMARY KEY AUTOINCREMENT,
        agent TEXT NOT NULL,
        status TEXT NOT NULL,
        at TEXT NOT NULL,
        reason TEXT NOT NULL DEFAULT ''
    );
    CREATE INDEX IF NOT EXISTS agent_changes_by_agent ON agent_changes (agent, id);
    CREATE TABLE IF NOT EXISTS agent_tokens (
        name TEXT PRIMARY KEY,
        token_hash TEXT NOT NULL,
        created_at TEXT NOT NULL,
        created_by TEXT NOT NULL,
        last_used TEXT
    );
    CREATE TABLE IF NOT EXISTS adhoc_results (
        event_id INTEGER NOT NULL,
        idx INTEGER NOT NULL,
        agent TEXT NOT NULL,
        host TEXT NOT NULL,
        run_id TEXT NOT NULL,
        state TEXT NOT NULL,
        return_code INTEGER,
        reason TEXT NOT NULL DEFAULT '',
        pid INTEGER,
        started_at TEXT,
        ended_at TEXT,
        stdout BLOB NOT NULL,
        stderr BLOB NOT NULL,
        stdout_cut INTEGER NOT NULL DEFAULT 0,
        stderr_cut INTEGER NOT NULL DEFAULT 0,
        PRIMARY KEY (event_id, idx)
    );
    CREATE INDEX IF NOT EXISTS adhoc_results_by_state ON adhoc_results (state);
    """,
    # 9: each task's latest run in one index probe (latest_run_states at start).
    """
    CREATE INDEX IF NOT EXISTS runs_by_tid_created ON runs (tid, created_at);
    """,
)
