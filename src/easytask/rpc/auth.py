"""Agent-stream authentication, as a server interceptor. API calls are authenticated by the
servicer (rpc/errors.authenticate), which knows the accounts."""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable
from typing import Any

import grpc

log = logging.getLogger(__name__)

AGENT_SERVICE_PREFIX = "/easytask.v1.AgentService/"


def token_of(metadata: tuple[tuple[str, Any], ...] | None) -> str:
    """The bearer token of a call's ``authorization`` metadata, or ``""``."""
    for key, value in metadata or ():
        if key == "authorization" and isinstance(value, str) and value.startswith("Bearer "):
            return value[len("Bearer ") :]
    return ""


class AgentTokenInterceptor(grpc.aio.ServerInterceptor):  # type: ignore[misc]
    """Refuses AgentService streams without an agent token; other calls pass on. Which name a
    token may connect as, and from where, the servicer decides (AgentTokens.identify)."""

    def __init__(self, known: Callable[[str], bool]) -> None:
        self._known = known

    async def intercept_service(
        self,
        continuation: Callable[[Any], Awaitable[Any]],
        handler_call_details: Any,
    ) -> Any:
        method: str = handler_call_details.method
        token = token_of(handler_call_details.invocation_metadata)
        if not method.startswith(AGENT_SERVICE_PREFIX) or self._known(token):
            return await continuation(handler_call_details)
        log.warning("refused %s: missing or invalid token", method)
        handler = await continuation(handler_call_details)
        return _deny(handler)


def _deny(handler: Any) -> Any:
    async def abort(request: Any, context: grpc.aio.ServicerContext) -> None:
        await context.abort(grpc.StatusCode.UNAUTHENTICATED, "missing or invalid token")

    if handler is None:
        return None
    if handler.request_streaming and handler.response_streaming:
        return grpc.stream_stream_rpc_method_handler(
            abort, handler.request_deserializer, handler.response_serializer
        )
    if handler.request_streaming:
        return grpc.stream_unary_rpc_method_handler(
            abort, handler.request_deserializer, handler.response_serializer
        )
    if handler.response_streaming:
        return grpc.unary_stream_rpc_method_handler(
            abort, handler.request_deserializer, handler.response_serializer
        )
    return grpc.unary_unary_rpc_method_handler(
        abort, handler.request_deserializer, handler.response_serializer
    )
