"""Credentials: the superuser password and the API/agent tokens, kept in the home (mode 0600)."""

from __future__ import annotations

import json
import os
import secrets
import string
from dataclasses import asdict, dataclass
from pathlib import Path

CREDENTIALS_FILE = "credentials.json"
SUPERUSER = "easytask_superuser"


@dataclass(frozen=True, slots=True)
class Credentials:
    username: str
    password: str
    api_token: str
    agent_token: str


def _password() -> str:
    alphabet = string.ascii_letters + string.digits
    return "".join(secrets.choice(alphabet) for _ in range(24))


def load_or_create(home: Path) -> tuple[Credentials, bool]:
    """Read ``<home>/credentials.json``, creating it (mode 0600) on first start.

    Returns the credentials and whether they were just created.
    """
    path = home / CREDENTIALS_FILE
    if path.exists():
        data = json.loads(path.read_text(encoding="utf-8"))
        return Credentials(**{k: data[k] for k in Credentials.__dataclass_fields__}), False
    creds = Credentials(
        username=SUPERUSER,
        password=_password(),
        # A fixed prefix: a token never starts with "-", which a command line would take for
        # an option (`--token -x…`), and says which kind it is.
        api_token="eta_" + secrets.token_urlsafe(32),
        agent_token="etg_" + secrets.token_urlsafe(32),
    )
    home.mkdir(parents=True, exist_ok=True)
    # O_EXCL + 0600 from the start: the secret is never readable by others, not even briefly.
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(fd, "w", encoding="utf-8") as fh:
        json.dump(asdict(creds), fh, indent=2)
        fh.write("\n")
    return creds, True
