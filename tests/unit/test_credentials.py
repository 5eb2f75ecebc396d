"""Credentials created on first start: private file, tokens usable on a command line."""

from __future__ import annotations

import stat
from pathlib import Path

from easytask.scheduler.credentials import load_or_create


def test_created_once_with_mode_0600_and_reread(tmp_path: Path) -> None:
    creds, created = load_or_create(tmp_path / "home")
    again, created_again = load_or_create(tmp_path / "home")
    assert created and not created_again and again == creds
    mode = stat.S_IMODE((tmp_path / "home" / "credentials.json").stat().st_mode)
    assert mode == 0o600
    assert len(creds.password) == 24 and creds.username == "easytask_superuser"


def test_tokens_never_look_like_command_line_options(tmp_path: Path) -> None:
    # A token starting with "-" broke `easytask-agentd --token <token>` (argparse took it for
    # an option); every generated token has a fixed prefix.
    for i in range(200):
        creds, _ = load_or_create(tmp_path / str(i))
        assert creds.api_token.startswith("eta_") and creds.agent_token.startswith("etg_")
        assert creds.api_token != creds.agent_token
