"""easytaskctl arguments: every command parses, flags map to task JSON fields, exit codes, and
each command against an in-process fake of the public API (requests sent, output printed)."""

from __future__ import annotations

import argparse
import json
import socket
import threading
from collections.abc import Iterator
from concurrent import futures
from http.server import BaseHTTPRequestHandler, HTTPServer
from pathlib import Path
from typing import Any

import grpc
import pytest

from easytask.ctl import scheduler as ctl_scheduler
from easytask.ctl.client import build_config, resolve_token
from easytask.ctl.health import reachable_url
from easytask.ctl.main import build_parser, main
from easytask.ctl.tasks import fields_from_args
from easytask.rpc.v1 import api_pb2 as pb
from easytask.rpc.v1 import api_pb2_grpc

TOKEN = "secret-token"
RUN_ID = "default:1000002:1746793800000:1"
EVENT = pb.EventRecord(
    id=7, event="TERMINATE_TASK", target="1001", args_json=json.dumps({"run_id": RUN_ID}),
    status="SUCCESS", message="Task 1001 terminated.", origin="CLI",
    published_by="easytask_superuser", created_at="2026-05-12T08:30:00.100Z",
    acked_at="2026-05-12T08:30:00.120Z", acked_by="default",
)  # fmt: skip

COMMANDS = [
    ["health"],
    ["health", "--dashboard", "http://127.0.0.1:8002"],
    ["tasks", "create", "-f", "task.json"],
    ["tasks", "create", "-n", "t", "-c", "ls", "--host", "q", "--stdout", "o", "--stderr", "e"],
    ["tasks", "update", "1001", "-f", "patch.json"],
    ["tasks", "update", "-n", "t", "--inactive", "--clear", "calendar"],
    ["tasks", "get", "1001"],
    ["tasks", "get", "-n", "t", "-o", "yaml"],
    ["tasks", "list", "--active", "-s", "etl", "-p", "2", "--per-page", "10", "-o", "json"],
    ["tasks", "delete", "1001", "--cascade"],
    ["tasks", "export", "-f", "out.json"],
    ["tasks", "import", "in.json", "--dry-run"],
    ["events", "force-run", "1001", "--run-date", "20250509"],
    ["events", "force-run", "-n", "t"],
    ["scheduler", "task-runs", "-s", "FAILED", "--search", "t", "--tid", "1001", "--since", "2"],
    ["scheduler", "task-runs", "--run-date", "2025-05-09", "-o", "yaml"],
    ["scheduler", "task-run-logs", RUN_ID, "--stream", "stderr", "-p", "2", "--per-page", "100"],
    ["scheduler", "task-run-logs", RUN_ID, "--follow"],
    ["scheduler", "upcoming", "--task", "1001", "--hours", "48", "--count", "5"],
    ["scheduler", "upcoming", "--from", "2025-05-01", "--to", "2025-05-31"],
    ["scheduler", "health", "-o", "json"],
    ["agents", "list", "-o", "json"],
    ["calendars", "list", "--builtin", "-o", "yaml", "-p", "2"],
    ["calendars", "get", "US_HOLIDAYS", "--year", "2026", "-o", "json"],
    ["calendars", "create", "Ops freeze", "-d", "change freezes"],
    ["calendars", "add-holiday", "Ops", "--date", "20260601", "--to", "20260603", "--reason", "m"],
    ["calendars", "remove-holiday", "Ops", "--entry", "3"],
    ["calendars", "delete", "Ops"],
    ["calendars", "delete", "Ops", "--entry", "3"],
    ["events", "refresh-calendar"],
    ["events", "list", "--task-name", "10", "--event-name", "freeze-task", "--since", "2"],
    ["events", "list", "--status", "failure", "--origin", "cli", "-p", "2", "-o", "json"],
    ["events", "get", "7", "-o", "yaml"],
    ["events", "ack", "7", "-t", "3"],
    ["events", "enable", "1001"],
    ["events", "disable", "-n", "t"],
    ["events", "freeze", "1001", "--run-date", "20260512", "--trigger-time", "8:30"],
    ["events", "unfreeze", "1001", "--trigger-time", "08:30"],
    ["events", "modify-status", "1001", "--status", "active", "--run-date", "2026-05-12"],
    ["events", "terminate", "1001", "--run-id", RUN_ID],
    ["events", "refresh-task", "1001"],
    ["events", "refresh-graph"],
    ["events", "refresh-group", "3"],
    ["events", "debug", "on"],
    ["auth", "login", "-u", "vera", "-p", "a-long-password"],
    ["auth", "login", "--password-stdin"],
    ["auth", "logout"],
    ["auth", "whoami", "-o", "yaml"],
    ["admin", "users", "list", "-s", "ve", "-p", "2", "--per-page", "5", "-o", "json"],
    ["admin", "users", "get", "vera", "-o", "yaml"],
    ["admin", "users", "create", "-f", "user.json"],
    ["admin", "users", "update", "vera", "-f", "patch.json"],
    ["admin", "users", "update", "-f", "patch.json"],
    ["admin", "users", "delete", "vera"],
    ["admin", "users", "reset-password", "vera", "-p", "a-long-password"],
    ["admin", "users", "reset-password", "vera", "--temporary"],
    ["admin", "users", "set-role", "vera", "operator"],
    ["admin", "roles-list", "-o", "json"],
]


@pytest.mark.parametrize("argv", COMMANDS, ids=lambda a: " ".join(a[:3]))
def test_every_command_parses(argv: list[str]) -> None:
    args = build_parser().parse_args(argv)
    assert callable(args.handler)


@pytest.mark.parametrize("argv", COMMANDS, ids=lambda a: " ".join(a[:3]))
def test_every_command_has_help(argv: list[str], capsys: pytest.CaptureFixture[str]) -> None:
    words = [w for w in argv if not w.startswith("-")][:2]
    assert main([*words, "-h"]) == 0
    assert "usage: easytaskctl" in capsys.readouterr().out


def test_global_options_before_or_after_the_command() -> None:
    parser = build_parser()
    before = parser.parse_args(["--server", "h:1", "--token", "x", "tasks", "get", "1001"])
    after = parser.parse_args(["tasks", "get", "1001", "--server", "h:1", "--token", "x"])
    assert (before.server, before.token) == (after.server, after.token) == ("h:1", "x")
    plain = parser.parse_args(["tasks", "get", "1001"])
    assert plain.server is None and plain.token is None


@pytest.mark.parametrize(
    "argv",
    [
        [],
        ["bogus"],
        ["tasks"],
        ["tasks", "list", "-o", "xml"],
        ["tasks", "list", "-p", "0"],
        ["tasks", "create", "--max-run-time", "soon"],
        ["tasks", "create", "--active", "--inactive"],
        ["tasks", "create"],  # neither -f nor fields
        ["tasks", "get"],  # neither TID nor -n
        ["tasks", "get", "1001", "-n", "t"],
        ["tasks", "update", "1001"],  # nothing to change
        ["events", "force-run", "1001", "--run-date", "May 9"],
        ["scheduler", "task-run-logs"],
        ["scheduler", "task-run-logs", RUN_ID, "--stream", "both"],
        ["scheduler", "upcoming", "--from", "2025-05-01"],
        ["scheduler", "task-runs", "--since", "-1"],
        ["calendars", "get"],
        ["calendars", "add-holiday", "Ops", "--date", "2026-06-01"],  # no --reason
        ["calendars", "add-holiday", "Ops", "--date", "June 1", "--reason", "r"],
        ["calendars", "remove-holiday", "Ops"],
        ["calendars", "delete", "Ops", "--entry", "x"],
        ["events", "modify-status", "1001"],  # no --status
        ["events", "modify-status", "1001", "--status", "RUNNING"],
        ["events", "freeze", "1001", "--trigger-time", "25:00"],
        ["events", "terminate"],  # neither TID nor -n
        ["events", "debug", "loud"],
        ["events", "get", "seven"],
        ["events", "ack", "7", "-t", "0"],
        ["auth", "login", "-u", "v", "-p", "a-long-password", "--password-stdin"],
        ["auth", "login", "-u", "v"],  # no terminal to ask the password on
        ["auth", "whoami", "-o", "xml"],
        ["admin"],
        ["admin", "users"],
        ["admin", "users", "create"],  # no -f
        ["admin", "users", "get"],
        ["admin", "users", "set-role", "vera"],  # no ROLE
        ["admin", "users", "reset-password", "vera", "-p", "a-long-password", "--temporary"],
        ["admin", "users", "reset-password", "vera"],  # no terminal to ask on
        ["admin", "users", "list", "-p", "0"],
    ],
)
def test_usage_errors_exit_2(argv: list[str], capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["--server", "127.0.0.1:1", "--token", "t", *argv]) == 2
    assert capsys.readouterr().err


def test_inline_create_flags_map_to_task_fields() -> None:
    args = build_parser().parse_args(
        [
            "tasks", "create", "-n", "task2", "-c", "ls -l", "--host", "production-server-1",
            "-d", "desc", "--run-as-user", "bob", "--inactive", "-g", "etl", "-z", "US/Eastern",
            "--trigger-times", "08:30", "--day-of-week", "MON-FRI",
            "--ordinal-day", "last day of every month",
            "--run-frequency", "09:00-17:00-60", "--calendar", "US_HOLIDAYS", "--dependency", "S:a",
            "--max-run-time", "300", "--retry-attempts", "3", "--stdout", "o.txt", "--stderr",
            "e.txt", "--profile", "prod", "--task-owner", "admin", "--tid", "1000002",
            "--retry-delay", "5", "--task-accept-expiry-time", "60", "--team", "ops",
            "--misfire-policy", "skip", "--misfire-grace", "10",
        ]
    )  # fmt: skip
    assert fields_from_args(args) == {
        "name": "task2",
        "tid": 1000002,
        "cmd": "ls -l",
        "run_on_host": "production-server-1",
        "description": "desc",
        "run_as_user": "bob",
        "task_group": "etl",
        "timezone": "US/Eastern",
        "trigger_times": "08:30",
        "day_of_week": "1111100",
        "ordinal_day": "last day of every month",
        "run_frequency": "09:00-17:00-60",
        "calendar": "US_HOLIDAYS",
        "dependency": "S:a",
        "stdout": "o.txt",
        "stderr": "e.txt",
        "profile": "prod",
        "task_owner": "admin",
        "team": "ops",
        "misfire_policy": "skip",
        "max_run_time": 300,
        "retry_attempts": 3,
        "retry_delay": 5,
        "task_accept_expiry_time": 60,
        "misfire_grace": 10,
        "active": False,
    }


def test_update_flags_rename_and_clear() -> None:
    args = build_parser().parse_args(
        ["tasks", "update", "-n", "old", "--new-name", "new", "--active", "--clear", "calendar"]
    )
    assert args.ref_name == "old"
    assert fields_from_args(args) == {"name": "new", "active": True, "calendar": None}


def test_token_resolution_order(tmp_path: Path) -> None:
    (tmp_path / "credentials.json").write_text(json.dumps({"api_token": "from-file"}))
    env = {"EASYTASK_HOME": str(tmp_path)}
    assert resolve_token(None, None, env)[0] == "from-file"
    assert resolve_token(None, None, {**env, "EASYTASK_TOKEN": "from-env"})[0] == "from-env"
    assert resolve_token("from-flag", None, {**env, "EASYTASK_TOKEN": "e"})[0] == "from-flag"
    assert resolve_token(None, str(tmp_path / "nowhere"), env) == (None, "")
    config = build_config(
        server=None, token=None, home=str(tmp_path), tls_ca=None, timeout=None,
        environ={"XDG_CONFIG_HOME": str(tmp_path / "config")},
    )  # fmt: skip
    assert config.server == "127.0.0.1:7070"
    assert config.metadata == (("authorization", "Bearer from-file"),)
    assert build_config(
        server=None, token=None, home=None, tls_ca=None, timeout=None,
        environ={"EASYTASK_SERVER": "h:9", "EASYTASK_HOME": str(tmp_path / "x")},
    ).server == "h:9"  # fmt: skip


# ---- against a fake API -----------------------------------------------------------------------


class FakeApi(api_pb2_grpc.EasyTaskApiServicer):
    """Records requests; answers like the spec says the scheduler does."""

    def __init__(self) -> None:
        self.requests: list[Any] = []
        self.follow_cut = ""  # FollowRunLogs: "", "stream", "final" or "never"

    def _auth(self, context: Any) -> None:
        if ("authorization", f"Bearer {TOKEN}") not in tuple(context.invocation_metadata()):
            context.abort(grpc.StatusCode.UNAUTHENTICATED, "invalid token")

    def CreateTask(self, request: pb.CreateTaskRequest, context: Any) -> pb.TaskReply:
        self._auth(context)
        self.requests.append(request)
        task = json.loads(request.task_json)
        if "cmd" not in task:
            errors = [
                {"field": "cmd", "message": "cmd is required"},
                {"field": "tid", "message": "tid must be > 1000"},
            ]
            context.set_trailing_metadata((("easytask-field-errors", json.dumps(errors)),))
            context.abort(grpc.StatusCode.INVALID_ARGUMENT, "cmd: cmd is required")
        return pb.TaskReply(task_json=json.dumps({"tid": 1001, **task}))

    def UpdateTask(self, request: pb.UpdateTaskRequest, context: Any) -> pb.TaskReply:
        self._auth(context)
        self.requests.append(request)
        return pb.TaskReply(task_json=json.dumps({"tid": 1001, "name": request.ref.name}))

    def GetTask(self, request: pb.TaskRef, context: Any) -> pb.TaskReply:
        self._auth(context)
        if request.tid != 1001:
            context.abort(grpc.StatusCode.NOT_FOUND, f"task {request.tid} not found")
        task = {"tid": 1001, "name": "task2", "day_of_week": "1111100", "cmd": "ls"}
        return pb.TaskReply(task_json=json.dumps(task))

    def ListTasks(self, request: pb.ListTasksRequest, context: Any) -> pb.ListTasksReply:
        self._auth(context)
        self.requests.append(request)
        task = {"tid": 1001, "name": "task2", "active": True, "run_on_host": "q1"}
        task |= {"day_of_week": "1111100", "trigger_times": "08:30"}
        return pb.ListTasksReply(
            tasks_json=[json.dumps(task)], task_status=["IDLE"], total=52, page=2, per_page=25
        )

    def DeleteTask(self, request: pb.DeleteTaskRequest, context: Any) -> pb.DeleteTaskReply:
        self._auth(context)
        return pb.DeleteTaskReply(tid=1001, name="task2", dependencies_cleared=request.cascade)

    def ImportTasks(self, request: pb.ImportTasksRequest, context: Any) -> pb.ImportTasksReply:
        self._auth(context)
        self.requests.append(request)
        errors = [pb.ImportError(name="bad", message="cmd: cmd is required")]
        return pb.ImportTasksReply(created=2, updated=1, deleted=0, errors=errors)

    def ForceRun(self, request: pb.ForceRunRequest, context: Any) -> pb.EventReply:
        self._auth(context)
        self.requests.append(request)
        if request.ref.tid == 1002:
            return pb.EventReply(status="FAILURE", message="task 1002 does not exist")
        return pb.EventReply(
            event_id=7,
            status="SUCCESS",
            message="Force run triggered for task 1001 (task2)\nRun date: 20250509",
            run_id=RUN_ID,
            run_date="20250509",
        )

    def PublishEvent(self, request: pb.PublishEventRequest, context: Any) -> pb.EventReply:
        self._auth(context)
        self.requests.append(request)
        if request.task.tid == 1002:
            return pb.EventReply(event_id=9, status="FAILURE", message="task 1002 not found")
        return pb.EventReply(event_id=8, status="SUCCESS", message=f"did {request.event}")

    def ListEvents(self, request: pb.ListEventsRequest, context: Any) -> pb.ListEventsReply:
        self._auth(context)
        self.requests.append(request)
        return pb.ListEventsReply(events=[EVENT], total=26, page=2, per_page=25)

    def GetEvent(self, request: pb.GetEventRequest, context: Any) -> pb.EventRecord:
        self._auth(context)
        if request.id not in (7, 8):
            context.abort(grpc.StatusCode.NOT_FOUND, f"event {request.id} not found")
        return EVENT if request.id == 7 else pb.EventRecord(id=8, status="PENDING")

    def ListRuns(self, request: pb.ListRunsRequest, context: Any) -> pb.ListRunsReply:
        self._auth(context)
        self.requests.append(request)
        run = pb.Run(
            run_id=RUN_ID, tid=1001, name="task2", run_date="20250509", local_time="08:30",
            attempt=1, state="SUCCESS", state_code=3, has_return_code=True, return_code=0,
            started_at="2025-05-09T12:30:01.000Z", ended_at="2025-05-09T12:35:33.000Z",
            has_duration=True, duration=332.0, agent="agent-1",
        )  # fmt: skip
        return pb.ListRunsReply(runs=[run], total=1, page=1, per_page=25, stats={"SUCCESS": 1})

    def FollowRunLogs(self, request: pb.FollowRunLogsRequest, context: Any) -> Iterator[Any]:
        """Serves b"hello world\n" / b"oops\n" from the requested offsets; with
        ``follow_cut`` set, the first call ends early, short of the output."""
        self._auth(context)
        self.requests.append(request)
        out, err = b"hello world\n", b"oops\n"
        pieces = [("stdout", out, 0, 6), ("stderr", err, 0, 5), ("stdout", out, 6, 12)]
        first = len(self.requests) == 1
        for stream, data, start, end in pieces:
            offset = request.stdout_offset if stream == "stdout" else request.stderr_offset
            if offset < end:
                yield pb.LogChunk(stream=stream, data=data[max(start, offset) : end], end=end)
            if first and self.follow_cut == "stream" and end == 5:
                return  # the stream breaks after stderr
        complete = not (first and self.follow_cut == "final") and self.follow_cut != "never"
        yield pb.LogChunk(final_state="SUCCESS", complete=complete)

    def ListAgents(self, request: pb.ListAgentsRequest, context: Any) -> pb.ListAgentsReply:
        self._auth(context)
        return pb.ListAgentsReply(
            agents=[
                pb.Agent(name="a1", status="online", host="h1", queues=["q1", "q2"],
                         cpu_percent=12.5, mem_percent=40.0, uptime_seconds=3723.0, running=2),
                pb.Agent(name="a2", status="offline", host="h2", queues=["q3"]),
            ]
        )  # fmt: skip


@pytest.fixture
def api() -> Iterator[tuple[FakeApi, list[str]]]:
    fake = FakeApi()
    server = grpc.server(futures.ThreadPoolExecutor(max_workers=4))
    api_pb2_grpc.add_EasyTaskApiServicer_to_server(fake, server)  # type: ignore[no-untyped-call]
    port = server.add_insecure_port("127.0.0.1:0")
    server.start()
    yield fake, ["--server", f"127.0.0.1:{port}", "--token", TOKEN, "--timeout", "10"]
    server.stop(None).wait()


Api = tuple[FakeApi, list[str]]


def test_create_inline_sends_fields(api: Api, capsys: pytest.CaptureFixture[str]) -> None:
    fake, conn = api
    argv = ["tasks", "create", "-n", "t", "-c", "ls", "--max-run-time", "30", "--active"]
    assert main([*argv, *conn]) == 0
    assert capsys.readouterr().out == (
        "Task validation completed\nTask inserted successfully (tid 1001)\n"
    )
    sent = json.loads(fake.requests[0].task_json)
    assert sent == {"name": "t", "cmd": "ls", "max_run_time": 30, "active": True}


def test_create_file_sent_as_is(api: Api, tmp_path: Path) -> None:
    fake, conn = api
    text = '{"name": "t", "cmd": "ls", "retry_attempts": "3"}\n'
    (tmp_path / "t.json").write_text(text)
    assert main(["tasks", "create", "-f", str(tmp_path / "t.json"), *conn]) == 0
    assert fake.requests[0].task_json == text


@pytest.mark.parametrize(
    ("content", "message"),
    [("{not json", "not valid JSON"), ("[1, 2]", "expected a JSON object, got an array"),
     (None, "cannot read")],
)  # fmt: skip
def test_a_bad_or_missing_file_is_a_usage_error(
    api: Api, tmp_path: Path, capsys: pytest.CaptureFixture[str], content: str | None,
    message: str
) -> None:  # fmt: skip
    fake, conn = api
    path = tmp_path / "bad.json"
    if content is not None:
        path.write_text(content)
    assert main(["tasks", "create", "-f", str(path), *conn]) == 2
    err = capsys.readouterr().err
    assert err.startswith("Error: ") and str(path) in err and message in err
    assert fake.requests == []


def test_validation_errors_listed(api: Api, capsys: pytest.CaptureFixture[str]) -> None:
    _, conn = api
    assert main(["tasks", "create", "-n", "t", *conn]) == 1
    assert capsys.readouterr().err == (
        "Error: validation failed\n  cmd: cmd is required\n  tid: tid must be > 1000\n"
    )


def test_not_found_exit_1(api: Api, capsys: pytest.CaptureFixture[str]) -> None:
    _, conn = api
    assert main(["tasks", "get", "5", *conn]) == 1
    assert capsys.readouterr().err == "Error: task 5 not found\n"


def test_wrong_token_exit_3(api: Api, capsys: pytest.CaptureFixture[str]) -> None:
    _, conn = api
    assert main(["tasks", "get", "1001", *conn, "--token", "wrong"]) == 3
    assert capsys.readouterr().err.startswith("Error: not authenticated: invalid token")


def test_unreachable_exit_3(capsys: pytest.CaptureFixture[str], tmp_path: Path) -> None:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    argv = ["--server", f"127.0.0.1:{port}", "--home", str(tmp_path), "--timeout", "5"]
    assert main(["tasks", "list", *argv]) == 3
    assert capsys.readouterr().err.startswith(f"Error: server unreachable at 127.0.0.1:{port}")
    assert main(["health", *argv]) == 3
    assert capsys.readouterr().out.startswith("✘ API reachable")


def test_get_panel_and_json(api: Api, capsys: pytest.CaptureFixture[str]) -> None:
    _, conn = api
    assert main(["tasks", "get", "1001", *conn]) == 0
    out = capsys.readouterr().out
    assert "Task 1001 (task2)" in out and "MON,TUE,WED,THU,FRI" in out
    assert main(["tasks", "get", "1001", "-o", "json", *conn]) == 0
    assert json.loads(capsys.readouterr().out)["day_of_week"] == "1111100"


def test_list_table_and_paging(api: Api, capsys: pytest.CaptureFixture[str]) -> None:
    fake, conn = api
    assert main(["tasks", "list", "--inactive", "-s", "ta", "-p", "2", *conn]) == 0
    out = capsys.readouterr().out
    assert "MON-FRI 08:30" in out and "IDLE" in out and "task2" in out
    assert out.rstrip().endswith("Page 2 of 3 (52 total items)")
    request = fake.requests[0]
    assert (request.active, request.search, request.page) == (2, "ta", 2)


def test_delete_cascade(api: Api, capsys: pytest.CaptureFixture[str]) -> None:
    _, conn = api
    assert main(["tasks", "delete", "1001", "--cascade", *conn]) == 0
    assert capsys.readouterr().out == (
        "Task deleted: task2 (tid 1001)\nDependencies cascade deleted.\n"
    )


def test_import_errors_exit_1(api: Api, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    fake, conn = api
    (tmp_path / "in.json").write_text('{"tasks": [], "groups": []}')
    assert main(["tasks", "import", str(tmp_path / "in.json"), *conn]) == 1
    assert capsys.readouterr().out == (
        "Import complete: 2 created, 1 updated, 0 unchanged, 0 deleted\n"
        "Errors:\n"
        '- Task "bad": cmd: cmd is required\n'
    )
    assert fake.requests[0].dry_run is False


def test_force_run(api: Api, capsys: pytest.CaptureFixture[str]) -> None:
    fake, conn = api
    assert main(["events", "force-run", "1001", "--run-date", "2025-05-09", *conn]) == 0
    assert capsys.readouterr().out == (
        f"Force run triggered for task 1001 (task2)\nRun date: 20250509\nRun ID: {RUN_ID}\n"
    )
    assert fake.requests[0].run_date == "20250509" and fake.requests[0].origin == "CLI"
    assert main(["events", "force-run", "1002", *conn]) == 1
    assert capsys.readouterr().err == "Error: task 1002 does not exist\n"


def test_task_runs(api: Api, capsys: pytest.CaptureFixture[str]) -> None:
    fake, conn = api
    assert main(["scheduler", "task-runs", "-s", "success", "--since", "2", *conn]) == 0
    out = capsys.readouterr().out
    assert "Stats" in out and "SUCCESS: 1" in out
    assert RUN_ID in out and "5m 32s" in out and "agent-1" in out
    assert "Page 1 of 1 (1 total items)" in out
    assert (fake.requests[0].status, fake.requests[0].since_hours) == ("SUCCESS", 2.0)
    assert main(["scheduler", "task-runs", "-o", "json", *conn]) == 0
    (run,) = json.loads(capsys.readouterr().out)
    assert run["run_id"] == RUN_ID and run["return_code"] == 0 and run["acked_at"] is None


def test_follow_logs_raw(api: Api, capfdbinary: pytest.CaptureFixture[bytes]) -> None:
    _, conn = api
    assert main(["scheduler", "task-run-logs", RUN_ID, "--follow", *conn]) == 0
    captured = capfdbinary.readouterr()
    assert captured.out == b"hello world\n"
    assert captured.err == b"oops\nRun finished: SUCCESS\n"


@pytest.mark.parametrize("cut", ["stream", "final"])
def test_follow_resumes_from_the_last_offset_printed(
    api: Api, cut: str, capfdbinary: pytest.CaptureFixture[bytes], monkeypatch: pytest.MonkeyPatch
) -> None:
    fake, conn = api
    fake.follow_cut = cut
    monkeypatch.setattr(ctl_scheduler, "FOLLOW_RETRY_SECONDS", 0.0)
    assert main(["scheduler", "task-run-logs", RUN_ID, "--follow", *conn]) == 0
    captured = capfdbinary.readouterr()
    assert captured.out == b"hello world\n"
    assert captured.err == b"oops\nRun finished: SUCCESS\n"
    resumed = fake.requests[1]
    assert (resumed.stdout_offset, resumed.stderr_offset) == (
        (6, 5) if cut == "stream" else (12, 5)
    )


def test_follow_that_cannot_deliver_everything_exits_non_zero(
    api: Api, capfdbinary: pytest.CaptureFixture[bytes], monkeypatch: pytest.MonkeyPatch
) -> None:
    fake, conn = api
    fake.follow_cut = "never"
    monkeypatch.setattr(ctl_scheduler, "FOLLOW_RETRY_SECONDS", 0.0)
    assert main(["scheduler", "task-run-logs", RUN_ID, "--follow", *conn]) == 1
    captured = capfdbinary.readouterr()
    assert captured.out == b"hello world\n"
    assert b"Error: output of run " in captured.err and b"incomplete" in captured.err
    assert b"stdout up to byte 12, stderr up to 5" in captured.err
    assert len(fake.requests) == ctl_scheduler.FOLLOW_RETRIES + 1


def test_agents_list(api: Api, capsys: pytest.CaptureFixture[str]) -> None:
    _, conn = api
    assert main(["agents", "list", *conn]) == 0
    out = capsys.readouterr().out
    assert out.startswith("1 online, 1 offline\n")
    assert "q1,q2" in out and "12.5" in out and "1h 2m 3s" in out and "—" in out


def test_parse_namespace_has_no_stray_fields() -> None:
    args = build_parser().parse_args(["tasks", "create", "-n", "x"])
    assert isinstance(args, argparse.Namespace)
    assert fields_from_args(args) == {"name": "x"}


class _Healthz(BaseHTTPRequestHandler):
    def do_GET(self) -> None:
        self.send_response(200 if self.path == "/healthz" else 404)
        self.end_headers()

    def log_message(self, format: str, *args: Any) -> None:
        pass


def test_health_with_dashboard(api: Api, capsys: pytest.CaptureFixture[str]) -> None:
    _, conn = api
    httpd = HTTPServer(("127.0.0.1", 0), _Healthz)
    thread = threading.Thread(target=httpd.serve_forever, daemon=True)
    thread.start()
    try:
        url = f"http://127.0.0.1:{httpd.server_address[1]}"
        # The fake has no Health method: UNIMPLEMENTED counts as a failed API check.
        assert main(["health", "--dashboard", url, *conn]) == 3
        out = capsys.readouterr().out.splitlines()
        assert out[0].startswith("✘ API reachable")
        assert out[1] == "✔ Dashboard reachable"
        assert main(["health", "--dashboard", url + "/nope", *conn]) == 3
        assert capsys.readouterr().out.splitlines()[1] == "✘ Dashboard reachable (HTTP 404)"
    finally:
        httpd.shutdown()
        httpd.server_close()
        thread.join()


# ---- events ----------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("argv", "sent"),
    [
        (["enable", "-n", "t"], ("ENABLE_TASK", 0, "t", "", "", "", "")),
        (["disable", "1001"], ("DISABLE_TASK", 1001, "", "", "", "", "")),
        (["freeze", "1001", "--run-date", "2026-05-12", "--trigger-time", "8:30"],
         ("FREEZE_TASK", 1001, "", "20260512", "08:30", "", "")),
        (["unfreeze", "1001"], ("UNFREEZE_TASK", 1001, "", "", "", "", "")),
        (["modify-status", "1001", "--status", "active", "--trigger-time", "10:00"],
         ("MODIFY_TASK_STATUS", 1001, "", "", "10:00", "ACTIVE", "")),
        (["terminate", "1001", "--run-id", RUN_ID],
         ("TERMINATE_TASK", 1001, "", "", "", "", RUN_ID)),
        (["refresh-task", "1001"], ("REFRESH_TASK_DEFINITION", 1001, "", "", "", "", "")),
        (["refresh-graph"], ("REFRESH_GRAPH", 0, "", "", "", "", "")),
        (["debug", "on"], ("ENABLE_DEBUG", 0, "", "", "", "", "")),
        (["debug", "off"], ("DISABLE_DEBUG", 0, "", "", "", "", "")),
    ],
)  # fmt: skip
def test_event_published_and_message_printed(
    api: Api, capsys: pytest.CaptureFixture[str], argv: list[str], sent: tuple[object, ...]
) -> None:
    fake, conn = api
    assert main(["events", *argv, *conn]) == 0
    assert capsys.readouterr().out == f"did {sent[0]}\n"
    (r,) = fake.requests
    got = (r.event, r.task.tid, r.task.name, r.run_date, r.trigger_time, r.status, r.run_id)
    assert (got, r.origin) == (sent, "CLI")


def test_refused_event_exit_1(api: Api, capsys: pytest.CaptureFixture[str]) -> None:
    _, conn = api
    assert main(["events", "terminate", "1002", *conn]) == 1
    assert capsys.readouterr() == ("", "Error: task 1002 not found\n")


@pytest.mark.parametrize(
    ("argv", "event"),
    [(["enable", "--group", "3"], "ENABLE_TASK"), (["disable", "--group", "3"], "DISABLE_TASK"),
     (["force-run", "--group", "3"], "FORCE_RUN_TASK"),
     (["modify-status", "3", "--status", "SUCCESS", "--group"], "MODIFY_TASK_STATUS"),
     (["refresh-group", "3"], "REFRESH_TASK_GROUP_DEFINITION")],
)  # fmt: skip
def test_group_targets_are_sent_as_groups(api: Api, argv: list[str], event: str) -> None:
    fake, conn = api
    main(["events", *argv, *conn])
    sent = [r for r in fake.requests if isinstance(r, pb.PublishEventRequest)]
    assert [(r.event, r.group.gid, r.task.tid) for r in sent] == [(event, 3, 0)]


def test_task_and_group_together_is_a_usage_error(api: Api) -> None:
    fake, conn = api
    assert main(["events", "enable", "5", "--group", "3", *conn]) == 2
    assert fake.requests == []


def test_events_list(api: Api, capsys: pytest.CaptureFixture[str]) -> None:
    fake, conn = api
    argv = ["events", "list", "--event-name", "terminate-task", "--status", "success"]
    assert main([*argv, "--origin", "cli", "--task-name", "10", "--since", "2", *conn]) == 0
    lines = capsys.readouterr().out.splitlines()
    assert lines[0].split() == ["ID", "Event", "Target", "Status", "Origin", "Published", "By",
                                "Time"]  # fmt: skip
    assert lines[2].split() == ["7", "TERMINATE_TASK", "1001", "SUCCESS", "CLI",
                                "easytask_superuser", "2026-05-12", "08:30:00"]  # fmt: skip
    assert lines[-1] == "Page 2 of 2 (26 total items)"
    r = fake.requests[0]
    assert (r.event_name, r.status, r.origin, r.task_name, r.since_hours, r.page) == (
        "TERMINATE_TASK", "SUCCESS", "CLI", "10", 2.0, 1
    )  # fmt: skip
    assert main(["events", "list", "-o", "json", *conn]) == 0
    (record,) = json.loads(capsys.readouterr().out)
    assert record["args"] == {"run_id": RUN_ID} and record["acked_by"] == "default"


def test_events_get(api: Api, capsys: pytest.CaptureFixture[str]) -> None:
    _, conn = api
    assert main(["events", "get", "7", *conn]) == 0
    out = capsys.readouterr().out
    assert "Event 7 (TERMINATE_TASK)" in out and json.dumps({"run_id": RUN_ID}) in out
    assert "2026-05-12T08:30:00.120Z" in out and "Task 1001 terminated." in out
    assert main(["events", "get", "8", "-o", "json", *conn]) == 0
    record = json.loads(capsys.readouterr().out)
    assert (record["status"], record["acked_at"], record["args"]) == ("PENDING", None, {})
    assert main(["events", "get", "5", *conn]) == 1
    assert capsys.readouterr().err == "Error: event 5 not found\n"


def test_events_ack(api: Api, capsys: pytest.CaptureFixture[str]) -> None:
    _, conn = api
    assert main(["events", "ack", "7", *conn]) == 0
    assert capsys.readouterr().out == (
        "Status ACKNOWLEDGED\nACK Time 2026-05-12T08:30:00.120Z\nScheduler default\n"
    )
    # The global --timeout (before the command) is the call deadline; -t bounds the wait.
    assert main([*conn, "events", "ack", "8", "-t", "0.3"]) == 1
    assert capsys.readouterr() == (
        "",
        "Error: event 8 not acknowledged within 0.3 s (status PENDING)\n",
    )


@pytest.mark.parametrize(
    ("url", "server", "reached"),
    [
        ("http://127.0.0.1:8002/", "127.0.0.1:7070", "http://127.0.0.1:8002/"),
        ("http://127.0.0.1:8002/", "sched.example:7070", "http://sched.example:8002/"),
        ("https://0.0.0.0:8443/", "10.0.0.5:7070", "https://10.0.0.5:8443/"),
        ("http://dash.example:8002/", "10.0.0.5:7070", "http://dash.example:8002/"),
        ("", "10.0.0.5:7070", ""),
    ],
)
def test_dashboard_address_reached_from_the_cli(url: str, server: str, reached: str) -> None:
    assert reachable_url(url, server) == reached
