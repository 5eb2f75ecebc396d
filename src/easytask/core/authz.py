"""The authorization policy (spec 14): may this caller do this? One pure function, ``refusal``.

The application layer asks it before every operation, so every transport (gRPC, the
dashboard's HTTP API) allows and refuses exactly the same things.
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum


class Role(StrEnum):
    """Roles, each allowed everything the one before it is (spec 14)."""

    VIEWER = "viewer"
    USER = "user"
    OPERATOR = "operator"
    ADMIN = "admin"
    SUPERADMIN = "superadmin"

    @property
    def rank(self) -> int:
        return _RANKS[self]

    def at_least(self, other: Role) -> bool:
        return self.rank >= other.rank


_RANKS = {role: i for i, role in enumerate(Role)}


class Action(StrEnum):
    """What a caller asks to do; the value is how a refusal names it."""

    READ = "read tasks, groups, runs, logs, events, agents and calendars"
    CREATE_TASK = "create tasks"
    CHANGE_TASK = "change tasks"  # update, delete, enable/disable
    RUN_TASK = "run tasks"  # force-run, freeze, unfreeze, terminate
    CREATE_GROUP = "create groups"
    CHANGE_GROUP = "change groups"
    RUN_GROUP = "run groups"
    MODIFY_STATUS = "modify run states"
    REFRESH = "refresh the scheduler"  # refresh-task/group/graph/calendar
    DEBUG = "switch debug logging"
    ADHOC = "run ad-hoc commands"
    CONTROL_AGENTS = "control agents"  # restart, agent tokens
    MANAGE_CALENDARS = "manage calendars"
    MANAGE_USERS = "manage users"
    SELF = "see or leave their own session"  # whoami, logout, refresh a token


# The least role for each action on anything (row 3 onwards of spec 14).
_LEAST: dict[Action, Role] = {
    Action.READ: Role.VIEWER,
    Action.SELF: Role.VIEWER,
    Action.CREATE_TASK: Role.USER,
    Action.CREATE_GROUP: Role.USER,
    Action.CHANGE_TASK: Role.OPERATOR,
    Action.RUN_TASK: Role.OPERATOR,
    Action.CHANGE_GROUP: Role.OPERATOR,
    Action.RUN_GROUP: Role.OPERATOR,
    Action.MODIFY_STATUS: Role.OPERATOR,
    Action.REFRESH: Role.OPERATOR,
    Action.DEBUG: Role.OPERATOR,
    Action.ADHOC: Role.OPERATOR,
    Action.CONTROL_AGENTS: Role.OPERATOR,
    Action.MANAGE_CALENDARS: Role.OPERATOR,
    Action.MANAGE_USERS: Role.ADMIN,
}
# A user may do these to the tasks they own (row 2: ``task_owner`` = username).
_ON_OWN_TASKS = frozenset({Action.CHANGE_TASK, Action.RUN_TASK})


@dataclass(frozen=True, slots=True)
class Caller:
    username: str
    role: Role


def refusal(
    caller: Caller,
    action: Action,
    *,
    owner: str = "",
    target_role: Role | None = None,
    new_role: Role | None = None,
) -> str | None:
    """Why ``caller`` may not do ``action``, or None when it may.

    Args:
        owner: the target task's ``task_owner`` (CHANGE_TASK, RUN_TASK).
        target_role: the role the target account has now (MANAGE_USERS).
        new_role: the role the target account would have afterwards (MANAGE_USERS).
    """
    role = caller.role
    if action in _ON_OWN_TASKS and role is Role.USER:
        if owner and owner == caller.username:
            return None
        return f"role {role.value} may {action.value} only where task_owner is {caller.username}"
    if not role.at_least(_LEAST[action]):
        return f"role {role.value} may not {action.value}"
    if action is Action.MANAGE_USERS and role is not Role.SUPERADMIN:
        if target_role is Role.SUPERADMIN:
            return f"role {role.value} may not change superadmin accounts"
        if new_role is Role.SUPERADMIN:
            return f"role {role.value} may not grant superadmin"
    return None


_EVENT_ACTIONS: dict[str, Action] = {
    "ENABLE_TASK": Action.CHANGE_TASK,
    "DISABLE_TASK": Action.CHANGE_TASK,
    "FREEZE_TASK": Action.RUN_TASK,
    "UNFREEZE_TASK": Action.RUN_TASK,
    "FORCE_RUN_TASK": Action.RUN_TASK,
    "TERMINATE_TASK": Action.RUN_TASK,
    "MODIFY_TASK_STATUS": Action.MODIFY_STATUS,
    "REFRESH_TASK_DEFINITION": Action.REFRESH,
    "REFRESH_TASK_GROUP_DEFINITION": Action.REFRESH,
    "REFRESH_GRAPH": Action.REFRESH,
    "REFRESH_CALENDAR": Action.REFRESH,
    "ENABLE_DEBUG": Action.DEBUG,
    "DISABLE_DEBUG": Action.DEBUG,
}
_ON_GROUPS = {Action.CHANGE_TASK: Action.CHANGE_GROUP, Action.RUN_TASK: Action.RUN_GROUP}


def event_action(event: str, for_group: bool) -> Action:
    """The action a spec-10 event asks for (an unknown event is refused later, as unknown)."""
    action = _EVENT_ACTIONS.get(event.upper(), Action.READ)
    return _ON_GROUPS.get(action, action) if for_group else action
