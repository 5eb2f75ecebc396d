"""The alert object model of spec 15: entries, their effective alert_on, checks, and which fire."""

from __future__ import annotations

from typing import Any

import pytest

from easytask.core import alerts
from easytask.core.alerts import (
    AlertOn,
    Channel,
    EmailEntry,
    SlackEntry,
    TeamsEntry,
    WebhookEntry,
    alert_errors,
    due,
    entry_dict,
    entry_texts,
    parse_alert,
    parse_entry,
    with_texts,
)
from easytask.core.errors import ValidationError
from easytask.core.states import RunState
from easytask.core.textrules import alert_errors as validation_alert_errors

EMAIL = {"integration": "email", "to": ["ops@example.com"], "subject": "s", "body": "b"}
SLACK = {"integration": "slack", "webhook_url": "https://hooks.example/x", "text": "t"}
HOOK = {"integration": "http", "url": "http://127.0.0.1:9/h"}
TEAMS = {"integration": "teams", "connection": "ops", "title": "T", "text": "x"}


def test_every_channel_and_alias_parses_to_its_entry() -> None:
    entries = parse_alert(
        {"integrations": [EMAIL, {**EMAIL, "integration": "genericsmtp"}, SLACK, HOOK, TEAMS]}
    )
    assert [type(e) for e in entries] == [
        EmailEntry,
        EmailEntry,
        SlackEntry,
        WebhookEntry,
        TeamsEntry,
    ]
    assert [e.channel for e in entries] == [
        Channel.EMAIL,
        Channel.EMAIL,
        Channel.SLACK,
        Channel.WEBHOOK,
        Channel.MSTEAMS,
    ]
    assert [e.index for e in entries] == [0, 1, 2, 3, 4]
    assert entries[1].integration == "genericsmtp"
    assert entries[4] == TeamsEntry(4, "teams", AlertOn.FAILURE, "x", "T", None, "ops")


@pytest.mark.parametrize(
    ("top", "entry", "effective"),
    [
        (None, None, AlertOn.FAILURE),  # the default
        ("always", None, AlertOn.ALWAYS),  # top level applies
        ("always", "success", AlertOn.SUCCESS),  # the entry wins
        (None, "always", AlertOn.ALWAYS),
        ("success", "failure", AlertOn.FAILURE),
    ],
)
def test_effective_alert_on(top: str | None, entry: str | None, effective: AlertOn) -> None:
    item: dict[str, Any] = dict(SLACK) if entry is None else {**SLACK, "alert_on": entry}
    obj: dict[str, Any] = {"integrations": [item]}
    if top is not None:
        obj["alert_on"] = top
    assert parse_alert(obj)[0].alert_on is effective


S = RunState
DUE_TABLE = [
    (S.FAILED, {"failure", "always"}),
    (S.TERMINATED, {"failure", "always"}),
    (S.REJECTED, {"failure", "always"}),
    (S.SUCCESS, {"success", "always"}),
    (S.SKIPPED, set()),
]


@pytest.mark.parametrize(("state", "firing"), DUE_TABLE)
def test_due_picks_entries_by_final_state(state: RunState, firing: set[str]) -> None:
    obj = {"integrations": [{**SLACK, "alert_on": on} for on in ("failure", "success", "always")]}
    assert {str(e.alert_on) for e in due(obj, state)} == firing


def test_due_without_alert_is_empty_and_a_live_state_is_refused() -> None:
    assert due(None, RunState.FAILED) == []
    with pytest.raises(ValueError, match="RUNNING is not a final state"):
        due({"integrations": [SLACK]}, RunState.RUNNING)


def test_due_refuses_a_broken_object_naming_the_field() -> None:
    with pytest.raises(ValidationError) as info:
        due({"integrations": [{"integration": "pager"}]}, RunState.FAILED)
    assert [str(e) for e in info.value.errors] == ["alert: unknown integration pager"]


ON = "alert_on must be one of failure, success, always"


def of(*items: dict[str, Any]) -> dict[str, Any]:
    return {"integrations": list(items)}


ERRORS = [
    ({"alert_on": "never", "integrations": [EMAIL]}, [ON]),
    (of({**SLACK, "alert_on": 3}), [ON]),
    (of({"integration": "pager"}), ["unknown integration pager"]),
    (of({"integration": "email"}), ["to is required", "subject is required", "body is required"]),
    (of({"integration": "msteams"}), ["webhook_url is required", "text is required"]),
    (of({**EMAIL, "to": "ops@example.com"}), ["to must be a list of strings"]),
    (of({**EMAIL, "cc": ["a", 1]}), ["cc must be a list of strings"]),
    (of({**HOOK, "body": "x", "headers": {"a": 1}}),
     ["headers must be an object of strings", "body must be an object"]),
    (of({**SLACK, "webhook_url": "ftp://x"}), ["webhook_url must be an http or https URL"]),
    (of({**TEAMS, "title": ["x"]}), ["title must be a string"]),
    (of(EMAIL, SLACK, HOOK, TEAMS), []),
]  # fmt: skip


@pytest.mark.parametrize(("obj", "messages"), ERRORS)
def test_errors(obj: dict[str, Any], messages: list[str]) -> None:
    assert alert_errors(obj) == messages


def test_validation_adds_the_placeholder_check_to_the_same_rules() -> None:
    bad = {
        "integrations": [{**EMAIL, "to": [], "subject": "${Q:x}"}, {**SLACK, "text": "${P:nope}"}]
    }
    assert alert_errors(bad) == ["to is required"]
    assert validation_alert_errors(bad) == [
        "to is required",
        "Bad placeholder ${Q:x}",
        "Bad placeholder ${P:nope}",
    ]


@pytest.mark.parametrize("item", [EMAIL, SLACK, HOOK, TEAMS, {**HOOK, "body": {"k": [1]},
                                  "headers": {"X-A": "b"}}, {**EMAIL, "cc": ["c@x"]}])  # fmt: skip
def test_entry_dict_round_trips(item: dict[str, Any]) -> None:
    entry = parse_alert({"alert_on": "always", "integrations": [item]})[0]
    again = parse_entry(entry.index, entry_dict(entry))
    assert again == entry
    assert alert_errors({"integrations": [entry_dict(entry)]}) == []


def test_texts_are_listed_and_replaced_per_channel() -> None:
    email, hook, teams = parse_alert({"integrations": [EMAIL, HOOK, TEAMS]})
    assert entry_texts(email) == {"subject": "s", "body": "b"}
    assert entry_texts(hook) == {}
    assert entry_texts(teams) == {"title": "T", "text": "x"}
    rendered = with_texts(email, {"subject": "Task t1 Failed"})
    assert isinstance(rendered, EmailEntry)
    assert (rendered.subject, rendered.body) == ("Task t1 Failed", "b")
    with pytest.raises(ValueError, match="not a text of a webhook entry: url"):
        with_texts(hook, {"url": "http://elsewhere"})


def test_alert_ids_are_per_run_and_entry() -> None:
    assert alerts.alert_id("default:1001:1746793800000:3", 1) == "default:1001:1746793800000:3:a1"
