"""The Sanic application factory: ``create_app(settings)`` composes the app from small
``setup_*`` steps. Nothing is opened at import time; every worker opens its own
resources in ``before_server_start`` and closes them in ``after_server_stop``."""

from __future__ import annotations

import asyncio
import gc
import logging
import os
import sys
import time

import aiohttp
from sanic import HTTPResponse, Request, Sanic

from edge import errors, metrics
from edge.logs import configure as configure_logs
from edge.relay import tokens
from edge.relay.keys import KeyCache
from edge.routes import (
    accounts,
    admin,
    anthropic,
    console,
    embeddings,
    models,
    openai,
    ops,
    plans,
    responses,
    root,
    usage,
)
from edge.routes import tokens as token_routes
from edge.security import Sessions, new_jwt_secret
from edge.services import Services
from edge.settings import Settings
from edge.supervisor import Supervisor
from edge.throttle import Throttles
from ledger import Database, Ledger
from ledger.secrets import get_or_create
from projections import process as projection_process

SWITCH_INTERVAL = 0.0005  # seconds; measured in tests/bench/gateway.py (README, Benchmarks)

log = logging.getLogger("tokensea")


def create_app(settings: Settings, name: str = "tokensea") -> Sanic:
    app = Sanic(name, configure_logging=False)
    app.config.AUTO_EXTEND = False  # never pull in sanic-ext, even when it is installed
    app.ctx.settings = settings
    setup_config(app, settings)
    setup_errors(app)
    setup_middleware(app, settings)
    setup_routes(app)
    setup_lifecycle(app)
    return app


def setup_config(app: Sanic, settings: Settings) -> None:
    app.config.REQUEST_MAX_SIZE = settings.max_body_bytes
    app.config.REQUEST_TIMEOUT = 60
    # Models may think for minutes before the first token; the relay has its own timeouts.
    app.config.RESPONSE_TIMEOUT = int(settings.upstream.first_byte_timeout + settings.upstream.idle_timeout + 60)
    app.config.KEEP_ALIVE_TIMEOUT = 75
    app.config.ACCESS_LOG = False
    app.config.PROXIES_COUNT = settings.server.proxies_count
    app.config.FALLBACK_ERROR_FORMAT = "json"


def setup_errors(app: Sanic) -> None:
    app.error_handler.add(Exception, errors.handle)


def setup_middleware(app: Sanic, settings: Settings) -> None:
    origins = set(settings.server.cors_origins)

    async def assign_request_id(request: Request) -> HTTPResponse | None:
        request.ctx.request_id = "req_" + os.urandom(16).hex()  # 128 random bits, as uuid4 but cheaper
        request.ctx.started = time.perf_counter()
        if origins and request.method == "OPTIONS":
            return HTTPResponse(status=204)
        return None

    app.register_middleware(assign_request_id, "request", priority=100)

    @app.on_response
    async def stamp(request: Request, response: HTTPResponse) -> None:
        # Every answer: browsers must not guess a content type (a JSON error rendered as
        # HTML), nor send our URLs (key ids, paths) to other sites as a referrer.
        response.headers["x-content-type-options"] = "nosniff"
        response.headers["referrer-policy"] = "no-referrer"
        request_id = getattr(request.ctx, "request_id", None)
        if request_id and "x-request-id" not in response.headers:
            response.headers["x-request-id"] = request_id
        if not getattr(request.ctx, "streaming", False):  # a stream is recorded when it ends
            metrics.observe(request, response.status)
        origin = request.headers.get("origin")
        if origin and ("*" in origins or origin in origins):
            response.headers["access-control-allow-origin"] = origin
            response.headers["access-control-allow-headers"] = "authorization, content-type, x-api-key, anthropic-version"
            response.headers["access-control-allow-methods"] = "GET, POST, PATCH, PUT, DELETE, OPTIONS"
            response.headers["vary"] = "origin"


def setup_routes(app: Sanic) -> None:
    for module in (accounts, token_routes, usage, plans, models, admin, openai, anthropic, ops, responses, embeddings):
        app.blueprint(module.blueprint)
    # / is the console's page when it is on, else a JSON description; HEAD / answers either
    # way (Claude Code probes it).
    app.blueprint(console.blueprint if app.ctx.settings.server.console else root.blueprint)


def setup_lifecycle(app: Sanic) -> None:
    @app.main_process_ready
    async def start_projection_process(app: Sanic) -> None:
        settings: Settings = app.ctx.settings
        if settings.projections.run_with_serve:
            app.manager.manage(
                "TokenSeaProjections",
                projection_process.run,
                {
                    "database_url": settings.database_url,
                    "schedule": settings.projections.schedule(),
                    "invite_reward": str(settings.invite_reward),
                    "invite_max_rewards_per_day": settings.invite_max_rewards_per_day,
                    "configure_logs": configure_logs,
                    "report_lag": metrics.record_lag,
                },
                restartable=True,  # edge.supervisor replaces it if it dies
            )
        app.ctx.supervisor = Supervisor(app.manager)
        app.ctx.supervisor.start()

    @app.main_process_stop
    async def stop_supervising(app: Sanic) -> None:
        supervisor: Supervisor | None = getattr(app.ctx, "supervisor", None)
        if supervisor is not None:
            supervisor.stop.set()

    @app.before_server_start
    async def open_services(app: Sanic) -> None:
        configure_logs()  # each worker is a fresh (spawned) process
        # The ledger's threads (readers, commands, SQLite's writers) wait for the GIL
        # whenever the event loop is busy; a shorter switch interval than the default
        # 5 ms hands it over sooner.
        sys.setswitchinterval(SWITCH_INTERVAL)
        settings: Settings = app.ctx.settings
        db = Database.from_url(settings.database_url)
        ledger = await asyncio.to_thread(
            Ledger, db, serving=True, on_batch=metrics.record_batch,
            stale_after=settings.ledger.recovery_stale_seconds, grace=settings.ledger.recovery_grace_seconds,
        )
        secret = settings.jwt_secret
        if not secret:
            secret, created = await asyncio.to_thread(get_or_create, db, "jwt", new_jwt_secret)
            if created:
                log.warning(
                    "TOKENSEA_JWT_SECRET is not set: generated a signing secret and stored it in the database; "
                    "set TOKENSEA_JWT_SECRET in production"
                )
        connector = aiohttp.TCPConnector(
            limit=settings.upstream.max_connections, ttl_dns_cache=300, keepalive_timeout=60
        )
        # No cookie jar: providers set cookies (Cloudflare's) on every answer, and one
        # shared jar would carry them from one user's calls into everyone else's.
        http = aiohttp.ClientSession(connector=connector, trust_env=False, cookie_jar=aiohttp.DummyCookieJar())
        app.ctx.services = Services(
            settings=settings,
            ledger=ledger,
            sessions=Sessions(secret, settings.jwt_ttl_days),
            throttle=Throttles(settings.server, ledger),
            http=http,
            keys=KeyCache(ledger),
        )
        tokens.preload()
        # What start-up built (modules, settings, the catalogue, the services) lives as
        # long as the worker: keep it out of the cyclic collector's full passes, which
        # otherwise paused a loaded worker for 50-95 ms (3-5 ms once frozen).
        gc.freeze()

    @app.after_server_stop
    async def close_services(app: Sanic) -> None:
        svc: Services | None = getattr(app.ctx, "services", None)
        if svc is None:
            return
        await svc.drain()
        await svc.http.close()
        await svc.ledger.aclose()
