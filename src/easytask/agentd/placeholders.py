"""Turning a RunTask into a command ready to spawn (spec 9 and 7.3).

Resolves the run user, the profile file, ``${E:...}`` / ``${T:...}`` placeholders in ``cmd``,
``stdout`` and ``stderr``, the output paths (relative ones against the run user's home) and the
command's environment. Failures raise ``PrepareError`` with the reason recorded on the FAILED run.
"""

from __future__ import annotations

import os
import pwd
import re
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from easytask.core.clock import Clock
from easytask.core.errors import PrepareError
from easytask.core.protocol import RunOrder

_PLACEHOLDER = re.compile(r"\$\{([A-Za-z]):([^}]*)\}")
_PROFILE_NAME = re.compile(r"[A-Za-z0-9_.-]+")


@dataclass(slots=True, frozen=True)
class RunUser:
    """The OS user a command runs as; ``switch`` is False for the agent's own user."""

    name: str
    uid: int
    gid: int
    home: str
    groups: tuple[int, ...]
    switch: bool


@dataclass(slots=True, frozen=True)
class Prepared:
    """A command ready to spawn."""

    cmd: str
    stdout_path: str
    stderr_path: str
    env: dict[str, str]
    user: RunUser
    profile_path: str


class CommandPreparer:
    """Builds ``Prepared`` commands.

    Args:
        profiles_dir: where profile names are looked up (``<dir>/<name>``, ``<dir>/<name>.env``).
        base_env: the agent's environment, inherited by every command.
        clock: used only when a RunTask carries no run date (date tokens then use "now").
    """

    def __init__(self, profiles_dir: Path, base_env: Mapping[str, str], clock: Clock) -> None:
        self._profiles_dir = profiles_dir
        self._base_env = dict(base_env)
        self._clock = clock
        uid = os.getuid()
        entry = pwd.getpwuid(uid)
        home = self._base_env.get("HOME") or entry.pw_dir
        self._self_user = RunUser(entry.pw_name, uid, os.getgid(), home, (), switch=False)

    @property
    def agent_user(self) -> str:
        return self._self_user.name

    def prepare(self, spec: RunOrder) -> Prepared:
        user = self._user(spec.run_as_user)
        profile_vars: dict[str, str] = {}
        profile_path = ""
        if spec.profile:
            profile_path = self._profile_path(spec.profile, user)
            profile_vars = parse_profile(profile_path, spec.profile)
        lookup = _Lookup(spec, profile_vars, self._base_env, self._clock)
        cmd = lookup.resolve(spec.cmd)
        stdout = _abspath(lookup.resolve(spec.stdout), user.home)
        stderr = _abspath(lookup.resolve(spec.stderr), user.home)
        env = self._base_env.copy()
        if user.switch:
            env.update(HOME=user.home, USER=user.name, LOGNAME=user.name)
        env.update(profile_vars)
        env["EASYTASK_RUN_ID"] = spec.run_id
        env["EASYTASK_TID"] = str(spec.tid)
        env["EASYTASK_TASK_NAME"] = spec.name
        env["EASYTASK_RUN_DATE"] = lookup.run_date
        env["EASYTASK_ATTEMPT"] = str(spec.attempt)
        return Prepared(cmd, stdout, stderr, env, user, profile_path)

    def _user(self, name: str) -> RunUser:
        me = self._self_user
        if not name or name == me.name:
            return me
        try:
            entry = pwd.getpwnam(name)
        except KeyError:
            raise PrepareError(f"cannot run as user {name}") from None
        if entry.pw_uid == me.uid:
            return me
        if me.uid != 0:  # only root may switch to another user
            raise PrepareError(f"cannot run as user {name}")
        groups = tuple(os.getgrouplist(name, entry.pw_gid))
        return RunUser(name, entry.pw_uid, entry.pw_gid, entry.pw_dir, groups, switch=True)

    def _profile_path(self, profile: str, user: RunUser) -> str:
        if profile.startswith("/"):
            candidates = [profile]
        elif profile.startswith("~/"):
            candidates = [os.path.join(user.home, profile[2:])]
        elif _PROFILE_NAME.fullmatch(profile):
            base = self._profiles_dir / profile
            candidates = [str(base), f"{base}.env"]
        else:
            candidates = []
        for candidate in candidates:
            if os.path.isfile(candidate):
                return candidate
        raise PrepareError(f"profile not found: {profile}")


def parse_profile(path: str, profile: str) -> dict[str, str]:
    """Parse ``KEY=VALUE`` lines: ``#`` comments, ``export `` and quoted values allowed."""
    try:
        with open(path, encoding="utf-8", errors="replace") as fh:
            text = fh.read()
    except OSError:
        raise PrepareError(f"profile not found: {profile}") from None
    out: dict[str, str] = {}
    for raw in text.splitlines():
        line = raw.strip()
        if not line or line.startswith("#"):
            continue
        if line.startswith("export "):
            line = line[len("export ") :].lstrip()
        key, sep, value = line.partition("=")
        key = key.strip()
        if not sep or not key:
            continue
        value = value.strip()
        if len(value) >= 2 and value[0] == value[-1] and value[0] in "'\"":
            value = value[1:-1]
        out[key] = value
    return out


def _abspath(path: str, home: str) -> str:
    if not path:
        return os.devnull
    if path.startswith("~/"):
        path = path[2:]
    return os.path.normpath(os.path.join(home, path))


class _Lookup:
    """Values of ``${E:...}`` and ``${T:...}`` for one run."""

    def __init__(
        self, spec: RunOrder, profile: Mapping[str, str], env: Mapping[str, str], clock: Clock
    ) -> None:
        self._spec = spec
        self._profile = profile
        self._env = env
        self._clock = clock
        self._dates: dict[str, str] | None = None

    @property
    def run_date(self) -> str:
        return self.dates["YYYYMMDD"]

    @property
    def dates(self) -> dict[str, str]:
        if self._dates is None:
            run_date, local_time = self._spec.run_date, self._spec.local_time
            if not run_date or not local_time:
                now = self._now()
                run_date = run_date or now.strftime("%Y%m%d")
                local_time = local_time or now.strftime("%H:%M")
            hh, mm = local_time[:2], local_time[3:5]
            self._dates = {"YYYYMMDD": run_date, "HH:MM": f"{hh}:{mm}", "HHMM": hh + mm, "HH": hh}
        return self._dates

    def _now(self) -> datetime:
        now = self._clock.now()
        try:
            return now.astimezone(ZoneInfo(self._spec.timezone)) if self._spec.timezone else now
        except (ZoneInfoNotFoundError, ValueError):
            return now

    def resolve(self, text: str) -> str:
        if "${" not in text:
            return text
        return _PLACEHOLDER.sub(self._one, text)

    def _one(self, match: re.Match[str]) -> str:
        prefix, name = match.group(1), match.group(2)
        if prefix == "E":
            if name in ("YYYYMMDD", "HH:MM", "HHMM", "HH"):
                return self.dates[name]
            if name in self._profile:
                return self._profile[name]
            if name in self._env:
                return self._env[name]
        elif prefix == "T":
            if name == "task_name":
                return self._spec.name
            if name == "task_id":
                return str(self._spec.tid)
        raise PrepareError(f"unknown placeholder {match.group(0)}")
