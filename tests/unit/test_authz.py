"""The authorization policy, row by row of spec 14, for every role."""

from __future__ import annotations

import pytest

from easytask.core.authz import Action, Caller, Role, event_action, refusal

R = Role
A = Action
ROLES = list(Role)

# Spec 14, one row each: (actions, roles allowed). "Own" rows are checked separately below.
ROWS: list[tuple[list[Action], set[Role]]] = [
    ([A.READ, A.SELF], set(ROLES)),
    ([A.CREATE_TASK, A.CREATE_GROUP], {R.USER, R.OPERATOR, R.ADMIN, R.SUPERADMIN}),
    (
        [
            A.CHANGE_TASK,
            A.RUN_TASK,
            A.CHANGE_GROUP,
            A.RUN_GROUP,
            A.MODIFY_STATUS,
            A.REFRESH,
            A.DEBUG,
        ],
        {R.OPERATOR, R.ADMIN, R.SUPERADMIN},
    ),
    ([A.ADHOC, A.CONTROL_AGENTS, A.MANAGE_CALENDARS], {R.OPERATOR, R.ADMIN, R.SUPERADMIN}),
    ([A.MANAGE_USERS], {R.ADMIN, R.SUPERADMIN}),
]
CASES = [
    (action, role, role in allowed)
    for actions, allowed in ROWS
    for action in actions
    for role in ROLES
]


def test_every_action_is_in_a_row() -> None:
    assert {a for actions, _ in ROWS for a in actions} == set(Action)


@pytest.mark.parametrize(("action", "role", "allowed"), CASES)
def test_each_row_for_each_role_on_someone_elses_target(
    action: Action, role: Role, allowed: bool
) -> None:
    caller = Caller("alice", role)
    reason = refusal(caller, action, owner="bob", target_role=Role.USER, new_role=Role.USER)
    assert (reason is None) is allowed, reason
    if not allowed:
        assert reason is not None and reason.startswith(f"role {role.value} may")


@pytest.mark.parametrize("action", [A.CHANGE_TASK, A.RUN_TASK])
def test_a_user_manages_only_the_tasks_it_owns(action: Action) -> None:
    alice = Caller("alice", R.USER)
    assert refusal(alice, action, owner="alice") is None
    assert refusal(alice, action, owner="bob") == (
        f"role user may {action.value} only where task_owner is alice"
    )
    assert refusal(alice, action, owner="") is not None  # an unowned task is not hers
    assert refusal(Caller("alice", R.VIEWER), action, owner="alice") == (
        f"role viewer may not {action.value}"
    )


def test_the_refusal_names_the_rule() -> None:
    assert refusal(Caller("v", R.VIEWER), A.CREATE_TASK) == "role viewer may not create tasks"


@pytest.mark.parametrize("role", [R.ADMIN, R.SUPERADMIN])
def test_only_a_superadmin_touches_superadmins(role: Role) -> None:
    caller = Caller("boss", role)
    on_superadmin = refusal(caller, A.MANAGE_USERS, target_role=R.SUPERADMIN)
    granting = refusal(caller, A.MANAGE_USERS, target_role=R.ADMIN, new_role=R.SUPERADMIN)
    creating = refusal(caller, A.MANAGE_USERS, new_role=R.SUPERADMIN)
    if role is R.SUPERADMIN:
        assert on_superadmin is granting is creating is None
    else:
        assert on_superadmin == "role admin may not change superadmin accounts"
        assert granting == creating == "role admin may not grant superadmin"
        assert refusal(caller, A.MANAGE_USERS, target_role=R.ADMIN, new_role=R.OPERATOR) is None


def test_roles_are_ordered() -> None:
    assert [r.value for r in Role] == ["viewer", "user", "operator", "admin", "superadmin"]
    assert R.ADMIN.at_least(R.OPERATOR) and not R.USER.at_least(R.OPERATOR)


@pytest.mark.parametrize(
    ("event", "for_group", "action"),
    [
        ("FORCE_RUN_TASK", False, A.RUN_TASK),
        ("force_run_task", True, A.RUN_GROUP),
        ("DISABLE_TASK", False, A.CHANGE_TASK),
        ("DISABLE_TASK", True, A.CHANGE_GROUP),
        ("MODIFY_TASK_STATUS", False, A.MODIFY_STATUS),
        ("REFRESH_GRAPH", False, A.REFRESH),
        ("ENABLE_DEBUG", False, A.DEBUG),
    ],
)
def test_events_map_to_the_rows_of_spec_14(event: str, for_group: bool, action: Action) -> None:
    assert event_action(event, for_group) is action
