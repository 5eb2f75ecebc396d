"""Bearer tokens of calls. Agent streams are authenticated by AgentServicer.Connect (a token,
or a mutual-TLS certificate, bound to the agent's name); API calls by the servicer
(rpc/errors.authenticate), which knows the accounts."""

from __future__ import annotations

from typing import Any


def token_of(metadata: tuple[tuple[str, Any], ...] | None) -> str:
    """The bearer token of a call's ``authorization`` metadata, or ``""``."""
    for key, value in metadata or ():
        if key == "authorization" and isinstance(value, str) and value.startswith("Bearer "):
            return value[len("Bearer ") :]
    return ""
