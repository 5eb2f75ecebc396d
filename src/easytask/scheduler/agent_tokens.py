"""AgentTokens: who may open an agent stream, under which name (spec 12 `agents token`).

Two kinds of token open an AgentService stream:

* a per-agent token, issued by an operator (``agents token create NAME``), shown once and
  stored as its SHA-256 (the secret is 256 random bits, so a fast hash is enough); it is bound
  to its name: the stream's hello must carry that name. Revoking it closes the stream it opened
  at once and refuses it after.
* the shared agent token of ``credentials.json``, kept for the local agent only: accepted from
  a loopback peer, for any name.
"""

from __future__ import annotations

import hashlib
import hmac
import logging
import re
import secrets

from easytask.core.clock import Clock
from easytask.core.errors import (
    AgentTokenNotFoundError,
    ConflictError,
    FieldError,
    ValidationError,
)
from easytask.core.records import AgentIdentity, AgentToken
from easytask.scheduler.hub import AgentHub
from easytask.store.ports import FleetStorePort

log = logging.getLogger(__name__)

PREFIX = "etk_"
_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.-]{0,127}")


def token_hash(secret: str) -> str:
    return hashlib.sha256(secret.encode()).hexdigest()


def is_loopback_peer(peer: str) -> bool:
    """grpc's peer string (``ipv4:127.0.0.1:5555``, ``ipv6:[::1]:5555``, ``unix:…``)."""
    return peer.startswith(("ipv4:127.", "ipv6:[::1]", "unix:"))


class AgentTokens:
    def __init__(
        self, *, store: FleetStorePort, hub: AgentHub, clock: Clock, shared_token: str
    ) -> None:
        self._store = store
        self._hub = hub
        self._clock = clock
        self._shared = shared_token
        self._by_hash: dict[str, str] = {}  # token hash -> agent name

    async def load(self) -> None:
        self._by_hash = {t.token_hash: t.name for t in await self._store.agent_tokens()}

    def identify(self, secret: str, peer: str) -> AgentIdentity | None:
        """The identity behind ``secret`` on a stream from ``peer``; None when refused."""
        if not secret:
            return None
        if hmac.compare_digest(secret.encode(), self._shared.encode()):
            return AgentIdentity(None) if is_loopback_peer(peer) else None
        name = self._by_hash.get(token_hash(secret))
        if name is None:
            return None
        self._store.touch_agent_token(name, self._clock.now())
        return AgentIdentity(name)

    async def create(self, name: str, by: str) -> tuple[AgentToken, str]:
        """A new token for ``name``, and its secret (shown once, never stored or logged)."""
        if not _NAME.fullmatch(name):
            message = "name must be 1-128 letters, digits, _ - . (starting with one of the first)"
            raise ValidationError([FieldError("name", message)])
        if name in self._by_hash.values():
            raise ConflictError(f"agent {name!r} already has a token; revoke it first")
        secret = PREFIX + secrets.token_urlsafe(32)
        token = AgentToken(name, token_hash(secret), self._clock.now(), by)
        await self._store.save_agent_token(token)
        self._by_hash[token.token_hash] = name
        log.info("agent token for %s created by %s", name, by)
        return token, secret

    async def list(self) -> list[AgentToken]:
        return await self._store.agent_tokens()

    async def revoke(self, name: str, by: str) -> AgentToken:
        """Forget the token and close the stream it opened, now."""
        tokens = {t.name: t for t in await self._store.agent_tokens()}
        if name not in tokens:
            raise AgentTokenNotFoundError(name)
        await self._store.delete_agent_token(name)
        self._by_hash = {h: n for h, n in self._by_hash.items() if n != name}
        session = self._hub.sessions.get(name)
        if session is not None and session.token_name == name:
            self._hub.disconnect(session, "agent token revoked")
        log.info("agent token for %s revoked by %s", name, by)
        return tokens[name]
