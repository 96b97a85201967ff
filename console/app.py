"""The console application: FastAPI, server-rendered pages, the /api/v1 JSON API, signed session cookies."""

from __future__ import annotations

from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from pathlib import Path

import asyncpg
from fastapi import FastAPI, HTTPException, Request
from fastapi.responses import JSONResponse, RedirectResponse, Response
from fastapi.staticfiles import StaticFiles
from starlette.middleware.sessions import SessionMiddleware
from swagger_ui_bundle import swagger_ui_path

from console import api, api_meters, api_providers, bulk_confirm, dead_letters, pages
from console.auth import SESSION_HOURS, LoginRequired, optional_user
from console.limits import BodyLimit
from console.queries import SESSION_SETTINGS
from kernel.connections import create_pool, endpoints, producer
from kernel.errors import PpuError
from kernel.settings import Settings
from kernel.topics import topic
from operations.command_results import CommandResults

SECURITY_HEADERS = {
    # data: images for Swagger UI's icons, which its stylesheet inlines; nothing else leaves 'self'.
    "Content-Security-Policy": "default-src 'self'; img-src 'self' data:; frame-ancestors 'none'; form-action 'self'",
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "same-origin",
    "Cache-Control": "no-store",
}


def create_app(settings: Settings) -> FastAPI:
    if settings.console_secret_key is None or len(settings.console_secret_key.get_secret_value()) < 32:
        raise PpuError("PPU_CONSOLE_SECRET_KEY must be set to at least 32 random characters")

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        where = endpoints(settings)
        app.state.settings = settings
        app.state.pool = await create_pool(
            where.database_url, min_size=1, max_size=10, server_settings=SESSION_SETTINGS
        )
        app.state.producer = producer(where.kafka_bootstrap_servers)
        await app.state.producer.start()
        app.state.results = CommandResults(
            where.kafka_bootstrap_servers, topic("command_results").name(settings.topic_prefix)
        )
        await app.state.results.start()
        try:
            yield
        finally:
            await app.state.results.stop()
            await app.state.producer.stop()
            await app.state.pool.close()

    app = FastAPI(
        title="PPU meter lookup console API",
        version="1",
        lifespan=lifespan,
        docs_url=None,  # served by pages.api_docs from bundled assets: FastAPI's own page loads them from a CDN
        openapi_url="/api/v1/openapi.json",
        redoc_url=None,
    )
    app.add_middleware(
        SessionMiddleware,
        secret_key=settings.console_secret_key.get_secret_value(),
        session_cookie="ppu_session",
        max_age=SESSION_HOURS * 3600,
        same_site="strict",
        https_only=settings.console_tls,
    )

    app.add_middleware(BodyLimit, max_bytes=settings.console_max_body_bytes)

    @app.middleware("http")
    async def security_headers(request: Request, call_next: Callable[[Request], Awaitable[Response]]) -> Response:
        response = await call_next(request)
        response.headers.update(SECURITY_HEADERS)
        return response

    @app.exception_handler(asyncpg.DataError)
    async def bad_characters(request: Request, exc: asyncpg.DataError) -> Response:
        # Input the database cannot store (a NUL character, say) is the client's error, not a 500.
        message = "the request holds characters or values the console does not accept"
        if request.url.path.startswith("/api/"):
            return JSONResponse({"detail": message}, status_code=422)
        user = await optional_user(request)
        return pages.page(request, "error.html", status_code=422, user=user, message=message)

    @app.exception_handler(LoginRequired)
    async def login_required(request: Request, exc: LoginRequired) -> Response:
        if request.url.path.startswith("/api/"):
            return JSONResponse({"detail": "login required"}, status_code=401)
        return RedirectResponse("/login", status_code=303)

    @app.exception_handler(HTTPException)
    async def http_error(request: Request, exc: HTTPException) -> Response:
        if request.url.path.startswith("/api/"):
            return JSONResponse({"detail": exc.detail}, status_code=exc.status_code)
        user = await optional_user(request)
        return pages.page(request, "error.html", status_code=exc.status_code, user=user, message=str(exc.detail))

    app.include_router(api.router)
    app.include_router(api_meters.router)
    app.include_router(api_providers.router)
    app.include_router(bulk_confirm.api)
    app.include_router(pages.router)
    app.include_router(bulk_confirm.pages)
    app.include_router(dead_letters.router)
    app.mount("/static", StaticFiles(directory=Path(__file__).parent / "static"), name="static")
    app.mount("/api/docs-assets", StaticFiles(directory=str(swagger_ui_path)), name="docs-assets")
    return app
