"""Accounts through the CLI with real processes: the superuser makes a viewer and an operator,
each logs in from their own machine (config directory), is allowed or refused per spec 14,
sessions end on a role change and on deactivation, an expired access token is refreshed by
itself, and no password or token lands in the database or the log."""

from __future__ import annotations

import json
import re
import stat
from pathlib import Path

import pytest

from tests.e2e.harness import Cluster, task_json

pytestmark = pytest.mark.e2e

PASSWORD = {"vera": "vera-reads-only-1", "otto": "otto-operates-all-1"}


def logins_of(cluster: Cluster, person: str) -> Path:
    return Path(cluster.config(person)) / "easytask" / "logins.json"


def login(cluster: Cluster, person: str) -> None:
    res = cluster.ctl(
        "auth", "login", "-u", person, "--password-stdin", person=person, stdin=PASSWORD[person]
    )
    assert res.stdout.splitlines() == [f"Logged in as {person}", "Instance 'default' selected."]


def create_user(cluster: Cluster, tmp_path: Path, username: str, role: str) -> None:
    doc = {"username": username, "password": PASSWORD[username], "role": role,
           "email": f"{username}@example.org", "first_name": username.title()}  # fmt: skip
    path = tmp_path / f"{username}.json"
    path.write_text(json.dumps(doc))
    assert cluster.ctl("admin", "users", "create", "-f", str(path)).stdout == (
        f"User created: {username}\n"
    )


def test_roles_sessions_and_secrets_through_the_cli(cluster: Cluster, tmp_path: Path) -> None:
    cluster.start_scheduler()
    cluster.start_agent("a1", "q1")
    out = tmp_path / "out"
    out.mkdir()
    task = task_json(1001, "nightly", "q1", "echo nightly-ran", out)
    (tmp_path / "t.json").write_text(json.dumps(task))
    # No login stored: the CLI on the scheduler's machine acts as the superuser (credentials file).
    cluster.ctl("tasks", "create", "-f", str(tmp_path / "t.json"))
    me = json.loads(cluster.ctl("auth", "whoami", "-o", "json").stdout)
    assert (me["username"], me["role"], me["instance"]) == ("easytask_superuser", "superadmin",
                                                             "default")  # fmt: skip
    create_user(cluster, tmp_path, "vera", "viewer")
    create_user(cluster, tmp_path, "otto", "operator")
    users = json.loads(cluster.ctl("admin", "users", "list", "-o", "json").stdout)
    assert {u["username"]: u["role"] for u in users} == {
        "easytask_superuser": "superadmin", "vera": "viewer", "otto": "operator"}  # fmt: skip

    # The viewer reads, and is refused a change that then did not happen.
    login(cluster, "vera")
    mode = stat.S_IMODE(logins_of(cluster, "vera").stat().st_mode)
    assert mode == 0o600
    assert "nightly" in cluster.ctl("tasks", "list", person="vera").stdout
    refused = cluster.ctl(
        "tasks", "create", "-n", "mine", "-c", "true", "--host", "q1", "-z", "UTC",
        "--trigger-times", "10:00", "--day-of-week", "MON",
        person="vera", check=False,
    )  # fmt: skip
    assert (refused.returncode, refused.stderr) == (1, "Error: role viewer may not create tasks\n")
    listed = json.loads(cluster.ctl("tasks", "list", "-o", "json").stdout)
    assert [t["name"] for t in listed] == ["nightly"]
    whoami = cluster.ctl("auth", "whoami", person="vera").stdout
    assert re.search(r"Username\s+vera", whoami) and re.search(r"Role\s+viewer", whoami)

    # The operator force-runs a task someone else owns; the event records who asked.
    login(cluster, "otto")
    res = cluster.ctl("events", "force-run", "1001", person="otto")
    run_id = re.search(r"Run ID: (\S+)", res.stdout)
    assert run_id, res.stdout
    assert cluster.wait_final(run_id.group(1)).state == "SUCCESS"
    events = json.loads(cluster.ctl("events", "list", "-o", "json", person="otto").stdout)
    forced = [e for e in events if e["event"] == "FORCE_RUN_TASK"]
    assert [e["published_by"] for e in forced] == ["otto"]

    # A role change ends the viewer's session at once, until it logs in again.
    assert cluster.ctl("admin", "users", "set-role", "vera", "user").stdout == (
        "Role set: vera -> user\n"
    )
    ended = cluster.ctl("tasks", "list", person="vera", check=False)
    assert ended.returncode == 3
    assert ended.stderr.startswith("Error: not authenticated: the session of vera on ")
    login(cluster, "vera")
    me = json.loads(cluster.ctl("auth", "whoami", "-o", "json", person="vera").stdout)
    assert me["role"] == "user"

    # An expired access token is refreshed by the CLI itself: the call succeeds, new tokens kept.
    stored = json.loads(logins_of(cluster, "vera").read_text())
    stored[cluster.server]["access_expires_at"] = "2020-01-01T00:00:00.000Z"
    logins_of(cluster, "vera").write_text(json.dumps(stored))
    assert "nightly" in cluster.ctl("tasks", "list", person="vera").stdout
    renewed = json.loads(logins_of(cluster, "vera").read_text())[cluster.server]
    old = stored[cluster.server]
    assert renewed["access_token"] != old["access_token"]
    assert renewed["refresh_token"] != old["refresh_token"]
    assert renewed["access_expires_at"] > "2026"

    # A deactivated user is out at once and cannot log in again.
    (tmp_path / "off.json").write_text(json.dumps({"active": False}))
    cluster.ctl("admin", "users", "update", "otto", "-f", str(tmp_path / "off.json"))
    assert cluster.ctl("tasks", "list", person="otto", check=False).returncode == 3
    res = cluster.ctl(
        "auth", "login", "-u", "otto", "--password-stdin", person="otto",
        stdin=PASSWORD["otto"], check=False,
    )  # fmt: skip
    assert (res.returncode, res.stderr) == (
        3, "Error: not authenticated: invalid username or password\n")  # fmt: skip

    # Logging out ends the session on the server too.
    token = json.loads(logins_of(cluster, "vera").read_text())[cluster.server]["access_token"]
    assert cluster.ctl("auth", "logout", person="vera").stdout == "Logged out successfully.\n"
    assert cluster.server not in json.loads(logins_of(cluster, "vera").read_text())
    replay = cluster.ctl("--token", token, "tasks", "list", person="vera", check=False)
    assert replay.returncode == 3

    # No password and no token in clear in the database files or in the scheduler's log.
    secrets = [*PASSWORD.values(), token, cluster.credentials()["api_token"]]
    for path in [logins_of(cluster, p) for p in ("vera", "otto")]:
        for entry in json.loads(path.read_text()).values():
            secrets += [entry["access_token"], entry["refresh_token"]]
    assert cluster.scheduler is not None
    files = [p for p in cluster.home.glob("easytask.db*")]
    assert files
    for path in files:
        data = path.read_bytes()
        for secret in secrets:
            assert secret.encode() not in data, f"a secret is stored in clear in {path.name}"
    log = cluster.scheduler.output()
    assert "user vera logged in" in log and "user vera logged out" in log
    assert "task 1001 (nightly) created by easytask_superuser" in log  # who changed what
    assert "event FORCE_RUN_TASK on 1001 by otto" in log
    for secret in secrets:
        assert secret not in log


def test_bad_account_input_names_the_field(cluster: Cluster, tmp_path: Path) -> None:
    cluster.start_scheduler()

    def create(doc: dict[str, object]) -> tuple[int, str]:
        res = cluster.ctl("admin", "users", "create", "-f", "-", stdin=json.dumps(doc), check=False)
        return res.returncode, res.stderr

    good = {"username": "dana", "password": "a-long-password-1"}
    assert create({**good, "role": "king"}) == (
        1, "Error: validation failed\n  role: role must be one of viewer, user, operator, admin, "
        "superadmin\n")  # fmt: skip
    for weak in ("", "short-pw"):
        code, err = create({**good, "password": weak})
        assert code == 1 and "  password: " in err, err
    code, err = create({**good, "username": "dana smith"})
    assert code == 1 and "  username: " in err and "no spaces" in err, err
    assert create(good) == (0, "")
    code, err = create(good)
    assert (code, err) == (
        1,
        "Error: validation failed\n  username: username dana already exists\n",
    )
    res = cluster.ctl("admin", "users", "set-role", "dana", "king", check=False)
    assert res.returncode == 1 and "  role: " in res.stderr
    res = cluster.ctl("admin", "users", "reset-password", "dana", "-p", "short", check=False)
    assert res.returncode == 1 and "  password: password must be at least 12" in res.stderr
    res = cluster.ctl("admin", "users", "get", "nobody", check=False)
    assert (res.returncode, res.stderr) == (1, "Error: user 'nobody' not found\n")
    # Usage errors: exit 2, before any call.
    res = cluster.ctl("admin", "users", "reset-password", "dana", "-p", "x" * 12, "--temporary",
                      check=False)  # fmt: skip
    assert res.returncode == 2 and "not both" in res.stderr
    res = cluster.ctl("auth", "login", "-u", "dana", check=False, stdin="")
    assert res.returncode == 2 and "password not given" in res.stderr
    res = cluster.ctl("auth", "logout", check=False)
    assert (res.returncode, res.stderr) == (1, f"Error: not logged in to {cluster.server}\n")
    # A temporary password works once printed, and the old one no longer does.
    res = cluster.ctl("admin", "users", "reset-password", "dana", "--temporary")
    temporary = re.search(r"Temporary password: (\S+)", res.stdout)
    assert temporary and res.stdout.startswith("Password reset for user dana\n")
    res = cluster.ctl("auth", "login", "-u", "dana", "-p", temporary.group(1), person="dana")
    assert res.stdout.startswith("Logged in as dana")
