"""SchedulerService: the composition root of easytask-scheduler (wires and runs everything)."""

from __future__ import annotations

import asyncio
import contextlib
import functools
import ipaddress
import logging
import os
import ssl
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from pathlib import Path

import grpc
from aiohttp import web
from argon2 import PasswordHasher

from easytask.core.clock import Clock
from easytask.core.errors import ConfigError
from easytask.rpc.agent import AgentServicer
from easytask.rpc.api import ApiServicer
from easytask.rpc.v1 import agent_pb2_grpc, api_pb2_grpc
from easytask.scheduler.accounts import AccountService
from easytask.scheduler.actions import RunActions
from easytask.scheduler.adhoc import AdhocBook
from easytask.scheduler.agent_tokens import AgentTokens
from easytask.scheduler.agentevents import AgentEvents
from easytask.scheduler.app import SchedulerApp
from easytask.scheduler.bus import Bus
from easytask.scheduler.calendars import BuiltinCalendars, CalendarBook
from easytask.scheduler.catalog import TaskCatalog
from easytask.scheduler.clock import SystemClock
from easytask.scheduler.credentials import CREDENTIALS_FILE, Credentials, load_or_create
from easytask.scheduler.engine import Engine
from easytask.scheduler.events import EventService
from easytask.scheduler.freezes import Freezes
from easytask.scheduler.groups import GroupRunner
from easytask.scheduler.holidays import HolidayService
from easytask.scheduler.hub import HEARTBEAT_SECONDS, OFFLINE_AFTER_SECONDS, AgentHub
from easytask.scheduler.lifecycle import SchedulerLifecycle
from easytask.scheduler.retention import DEFAULT_RETENTION_DAYS, Retention
from easytask.scheduler.runrouter import RunRouter
from easytask.scheduler.runs import RunBook
from easytask.scheduler.taskindex import TaskIndex
from easytask.scheduler.timers import Timers
from easytask.store.ports import Store
from easytask.store.sqlite import SqliteStore
from easytask.ui.app import create_app

log = logging.getLogger(__name__)

DB_FILE = "easytask.db"
DRAIN_SECONDS = 30.0  # longest wait at shutdown for queued store writes to commit
ADDRESS_FILE = "scheduler.addr"
DASHBOARD_FILE = "dashboard.url"  # where this start serves the dashboard
STOP_GRACE_SECONDS = 2.0
# Queued store writes (and their output bytes) past which agent streams are read no further
# until commits catch up.
WRITE_BACKLOG = 1000
WRITE_BACKLOG_BYTES = 16 * 1024 * 1024


@dataclass(frozen=True, slots=True)
class SchedulerConfig:
    home: Path
    grpc_listen: str = "127.0.0.1:7070"
    http_listen: str = "127.0.0.1:8002"
    instance: str = "default"
    insecure: bool = False
    tls_cert: Path | None = None
    tls_key: Path | None = None
    tls_ca: Path | None = None  # mutual TLS for agents on agent_listen
    agent_listen: str = ""
    heartbeat_seconds: int = HEARTBEAT_SECONDS
    offline_after_seconds: int = OFFLINE_AFTER_SECONDS
    clock_offset: float = 0.0
    retention_days: int = DEFAULT_RETENTION_DAYS  # 0 keeps stored runs forever


def split_hostport(value: str, what: str) -> tuple[str, int]:
    host, sep, port = value.rpartition(":")
    if not sep or not port.isdigit():
        raise ConfigError(f"{what} must be HOST:PORT, got {value!r}")
    return host.strip("[]") or "127.0.0.1", int(port)


def host_timezone() -> str:
    """The IANA zone this host runs in: $TZ, else the target of /etc/localtime, else UTC."""
    zone = os.environ.get("TZ", "").lstrip(":")
    if zone:
        return zone
    target = os.path.realpath("/etc/localtime")
    if "zoneinfo/" in target:
        return target.split("zoneinfo/", 1)[1]
    return "UTC"


def is_loopback(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def check_heartbeats(config: SchedulerConfig) -> None:
    """A heartbeat of 1-3600 s, and an offline timeout of at least two beats."""
    beat, offline = config.heartbeat_seconds, config.offline_after_seconds
    if not 1 <= beat <= 3600:
        raise ConfigError(f"--heartbeat-seconds must be 1-3600, got {beat}")
    if offline < 2 * beat:
        raise ConfigError(
            f"--offline-after must be at least twice --heartbeat-seconds ({2 * beat} s), "
            f"got {offline}"
        )


def check_binding(config: SchedulerConfig) -> None:
    """Refuse a non-loopback bind without TLS unless ``insecure`` was asked for."""
    for value, what in (
        (config.grpc_listen, "--grpc-listen"),
        (config.http_listen, "--http-listen"),
        (config.agent_listen, "--agent-listen"),
    ):
        if not value:
            continue
        host, _ = split_hostport(value, what)
        tls = config.tls_cert is not None
        if not is_loopback(host) and not tls and not config.insecure:
            raise ConfigError(
                f"{what} {value} is not a loopback address: give --tls-cert/--tls-key "
                "or pass --insecure to serve it unencrypted"
            )


class SchedulerService:
    """Builds the store, engine, hub, catalog and servers, and runs them in one TaskGroup."""

    def __init__(
        self,
        config: SchedulerConfig,
        clock: Clock | None = None,
        password_hasher: PasswordHasher | None = None,
    ) -> None:
        """``password_hasher``: Argon2id parameters (the library's defaults unless given;
        tests pass cheaper ones)."""
        check_binding(config)
        check_heartbeats(config)
        self.config = config
        self.clock: Clock = clock or SystemClock(config.clock_offset)
        self._hasher = password_hasher
        self.app: SchedulerApp | None = None
        # For diagnostics and tests: the scheduling core, the hub and the store, once built.
        self.core: Scheduling | None = None
        self.hub: AgentHub | None = None
        self.retention: Retention | None = None
        self.store: Store | None = None
        self._stop = asyncio.Event()
        self.grpc_port: int | None = None
        self.agent_port: int | None = None  # the mutual-TLS port, with --tls-ca
        self.http_port: int | None = None
        self.ready = asyncio.Event()

    def stop(self) -> None:
        """Ask the service to stop; idempotent."""
        self._stop.set()

    async def run(self) -> None:
        cfg = self.config
        cfg.home.mkdir(parents=True, exist_ok=True)
        creds, created = load_or_create(cfg.home)
        if created:
            log.info(
                "created superuser %s; credentials and tokens are in %s (mode 0600)",
                creds.username,
                cfg.home / CREDENTIALS_FILE,
            )
        clock = self.clock
        store = await SqliteStore.open(cfg.home / DB_FILE)
        self.store = store
        # The writer outlives everything that writes: it is stopped, drained, then the store
        # closes; a crash anywhere above still runs these steps.
        writer = asyncio.create_task(store.run_writer(), name="store-writer")
        writer.add_done_callback(self._writer_ended)
        lifecycle = SchedulerLifecycle(store.lifecycle, clock)
        try:
            await lifecycle.started()
            await self._serve(store, clock, creds)
            await lifecycle.stopped()  # the clean-stop mark; a crash above leaves none
        finally:
            await _drain(store, writer)
            await store.close()
            log.info("scheduler stopped")

    def _writer_ended(self, task: asyncio.Task[None]) -> None:
        """A writer that ends before the stop leaves nothing able to commit: stop too."""
        if not task.cancelled() and task.exception() is not None:
            log.error("store writer crashed; stopping", exc_info=task.exception())
            self.stop()
        elif not self._stop.is_set():
            log.error("store writer ended early; stopping")
            self.stop()

    async def _serve(self, store: SqliteStore, clock: Clock, creds: Credentials) -> None:
        cfg = self.config
        accounts = AccountService(store=store.accounts, clock=clock, hasher=self._hasher,
                                  file_token=creds.api_token)  # fmt: skip
        if await accounts.ensure_superuser(creds.password):
            log.info("account %s (superadmin) created; its password is in %s", creds.username,
                     cfg.home / CREDENTIALS_FILE)  # fmt: skip
        bus = Bus()
        hub = AgentHub(clock, cfg.heartbeat_seconds, cfg.offline_after_seconds)
        calendars = CalendarBook(BuiltinCalendars())
        core = wire(
            instance=cfg.instance, store=store, clock=clock, hub=hub, calendars=calendars, bus=bus
        )
        adhoc = AdhocBook(instance=cfg.instance, hub=hub, store=store, bus=bus, clock=clock)
        agent_tokens = AgentTokens(
            store=store.fleet, hub=hub, clock=clock, shared_token=creds.agent_token
        )
        await agent_tokens.load()
        hub.bind(RunRouter(core.agent_events, adhoc))
        self.core, self.hub = core, hub
        engine = core.engine
        holidays = HolidayService(store=store.calendars, book=calendars, engine=engine, clock=clock)
        async with asyncio.TaskGroup() as tg:
            # Calendars first: loading the engine settles missed slots, holidays included.
            await holidays.load()
            await engine.load()
            await adhoc.load()
            catalog = TaskCatalog(
                instance=cfg.instance, store=store, engine=engine, calendars=calendars, clock=clock
            )
            events = EventService(
                instance=cfg.instance, store=store, engine=engine, actions=core.actions,
                catalog=catalog, clock=clock, refresh_calendars=holidays.load,
            )  # fmt: skip
            app = SchedulerApp(
                instance=cfg.instance, store=store, engine=engine, hub=hub, catalog=catalog,
                calendars=calendars, holidays=holidays, events=events, accounts=accounts, bus=bus,
                clock=clock, timezone=host_timezone(), adhoc=adhoc, agent_tokens=agent_tokens,
            )  # fmt: skip
            self.app = app
            self.retention = Retention(store=store, clock=clock, days=cfg.retention_days)
            firing = [
                tg.create_task(engine.run_timers(), name="engine-timers"),
                tg.create_task(engine.run_ticks(), name="engine-ticks"),
                tg.create_task(self.retention.run(), name="store-retention"),
            ]
            heartbeats = tg.create_task(hub.watch_heartbeats(), name="hub-heartbeats")
            server: grpc.aio.Server | None = None
            http: web.AppRunner | None = None
            try:
                room = functools.partial(store.writer.room, WRITE_BACKLOG, WRITE_BACKLOG_BYTES)
                server = await self._start_grpc(app, hub, agent_tokens, room)
                http = await self._start_http()
                address = f"127.0.0.1:{self.grpc_port}\n"
                if self.http_port is not None:
                    scheme = "https" if cfg.tls_cert is not None else "http"
                    dashboard = f"{scheme}://127.0.0.1:{self.http_port}/\n"
                    (cfg.home / DASHBOARD_FILE).write_text(dashboard, encoding="utf-8")
                    app.dashboard_url = dashboard.strip()
                (cfg.home / ADDRESS_FILE).write_text(address, encoding="utf-8")
                log.info(
                    "scheduler instance %s ready: gRPC on port %s, HTTP on port %s, home %s",
                    cfg.instance, self.grpc_port, self.http_port, cfg.home,
                )  # fmt: skip
                self.ready.set()
                await self._stop.wait()
                log.info("scheduler stopping")
            finally:
                # Nothing fires after the stop: what falls due now is a missed slot for the
                # next start. Then no more calls or streams (their last writes still queue).
                for task in firing:
                    task.cancel()
                if server is not None:
                    await server.stop(STOP_GRACE_SECONDS)
                if http is not None:
                    await http.cleanup()
                heartbeats.cancel()

    async def _start_grpc(
        self,
        app: SchedulerApp,
        hub: AgentHub,
        agent_tokens: AgentTokens,
        room: Callable[[], Awaitable[None]],
    ) -> grpc.aio.Server:
        cfg = self.config
        server = grpc.aio.server(
            options=[
                ("grpc.max_receive_message_length", 16 * 1024 * 1024),
                ("grpc.max_send_message_length", 16 * 1024 * 1024),
                ("grpc.keepalive_permit_without_calls", 1),
                ("grpc.http2.min_ping_interval_without_data_ms", 5000),
            ],
        )
        api_pb2_grpc.add_EasyTaskApiServicer_to_server(ApiServicer(app), server)  # type: ignore[no-untyped-call]
        register_agent = agent_pb2_grpc.add_AgentServiceServicer_to_server
        servicer = AgentServicer(hub, cfg.instance, agent_tokens, room)
        register_agent(servicer, server)  # type: ignore[no-untyped-call]
        host, port = split_hostport(cfg.grpc_listen, "--grpc-listen")
        address = f"[{host}]:{port}" if ":" in host else f"{host}:{port}"
        if cfg.tls_cert is not None and cfg.tls_key is not None:
            creds = grpc.ssl_server_credentials(
                [(cfg.tls_key.read_bytes(), cfg.tls_cert.read_bytes())]
            )
            self.grpc_port = server.add_secure_port(address, creds)
        else:
            self.grpc_port = server.add_insecure_port(address)
        if cfg.tls_ca is not None and cfg.agent_listen:
            self.agent_port = self._add_mutual_tls_port(server)
        await server.start()
        return server

    def _add_mutual_tls_port(self, server: grpc.aio.Server) -> int:
        """The agents' port: a client certificate signed by ``--tls-ca`` is required (a
        handshake without one, or with one from another CA, fails)."""
        cfg = self.config
        assert cfg.tls_ca is not None and cfg.tls_cert is not None and cfg.tls_key is not None
        host, port = split_hostport(cfg.agent_listen, "--agent-listen")
        address = f"[{host}]:{port}" if ":" in host else f"{host}:{port}"
        creds = grpc.ssl_server_credentials(
            [(cfg.tls_key.read_bytes(), cfg.tls_cert.read_bytes())],
            root_certificates=cfg.tls_ca.read_bytes(),
            require_client_auth=True,
        )
        bound: int = server.add_secure_port(address, creds)
        return bound

    async def _start_http(self) -> web.AppRunner | None:
        if not self.config.http_listen:
            return None
        cfg = self.config
        host, port = split_hostport(cfg.http_listen, "--http-listen")
        assert self.app is not None
        tls: ssl.SSLContext | None = None
        if cfg.tls_cert is not None and cfg.tls_key is not None:
            tls = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
            tls.load_cert_chain(cfg.tls_cert, cfg.tls_key)
        webapp = create_app(self.app, secure=tls is not None)
        runner = web.AppRunner(webapp, access_log=None, shutdown_timeout=1.0)
        await runner.setup()
        site = web.TCPSite(runner, host, port, ssl_context=tls)
        try:
            await site.start()
        except BaseException:
            await runner.cleanup()  # the live hub and its bus subscription go with it
            raise
        server = getattr(site, "_server", None)
        sockets = getattr(server, "sockets", None) or []
        self.http_port = sockets[0].getsockname()[1] if sockets else port
        return runner


@dataclass(frozen=True, slots=True)
class Scheduling:
    engine: Engine
    runs: RunBook
    groups: GroupRunner
    actions: RunActions
    agent_events: AgentEvents
    timers: Timers


def wire(
    *, instance: str, store: Store, clock: Clock, hub: AgentHub, calendars: CalendarBook, bus: Bus
) -> Scheduling:
    index = TaskIndex()
    timers = Timers(clock)
    freezes = Freezes()
    runs = RunBook(instance=instance, store=store, hub=hub, timers=timers, index=index, bus=bus)
    groups = GroupRunner(
        runs=runs, index=index, timers=timers, freezes=freezes, calendars=calendars,
        store=store, clock=clock,
    )  # fmt: skip
    runs.follow_members(groups)
    engine = Engine(
        store=store, clock=clock, index=index, timers=timers, runs=runs, groups=groups,
        freezes=freezes, calendars=calendars,
    )  # fmt: skip
    actions = RunActions(
        runs=runs, groups=groups, index=index, timers=timers, freezes=freezes, hub=hub,
        store=store, clock=clock,
    )  # fmt: skip
    agent_events = AgentEvents(runs=runs, hub=hub, store=store, bus=bus, clock=clock)
    return Scheduling(engine, runs, groups, actions, agent_events, timers)


async def _drain(store: SqliteStore, writer: asyncio.Task[None]) -> None:
    """Commit every queued write, bounded: a store that cannot take them is given up on."""
    store.stop_writer()
    done, _ = await asyncio.wait({writer}, timeout=DRAIN_SECONDS)
    if done:
        return  # drained (a crashed writer was logged when it ended)
    log.error(
        "store writes still failing after %.0f s at shutdown (disk full or gone?); "
        "%d writes are not stored",
        DRAIN_SECONDS, store.pending_writes,
    )  # fmt: skip
    writer.cancel()
    with contextlib.suppress(asyncio.CancelledError):
        await writer
