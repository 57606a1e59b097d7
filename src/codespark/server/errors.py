"""The one mapping from exceptions to HTTP errors: OpenAI-shaped, and Ollama's ``{"error": "..."}`` on the
Ollama-compatible routes (``/api/...``), which its clients parse."""

from __future__ import annotations

import logging

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from starlette.exceptions import HTTPException as StarletteHTTPException

from codespark.errors import AuthenticationError, CodesparkError, OverloadedError, RateLimitError
from codespark.guard.auth import retry_after_header

log = logging.getLogger("codespark.server")


def error_body(message: str, error_type: str, param: str | None = None, code: str | None = None) -> dict[str, object]:
    return {"error": {"message": message, "type": error_type, "param": param, "code": code}}


def error_headers(exc: CodesparkError) -> dict[str, str]:
    """The headers an error carries: ``Retry-After`` when a retry will work, ``WWW-Authenticate`` for a 401."""
    headers: dict[str, str] = {}
    if isinstance(exc, RateLimitError | OverloadedError):
        headers["Retry-After"] = retry_after_header(exc.retry_after)
    if isinstance(exc, AuthenticationError):
        headers["WWW-Authenticate"] = "Bearer"
    return headers


def _validation_message(exc: RequestValidationError) -> tuple[str, str | None]:
    problems: list[str] = []
    param: str | None = None
    for err in exc.errors():
        loc = [str(x) for x in err.get("loc", ()) if x != "body"]
        if err.get("type") == "json_invalid":
            return "The request body is not valid JSON: " + str(err.get("ctx", {}).get("error", err["msg"])), None
        where = ".".join(loc) or "body"
        param = param or (loc[0] if loc else None)  # the top-level field, as OpenAI reports it
        problems.append(f"{where}: {err['msg']}")
    return "Invalid request: " + "; ".join(problems), param


def _ollama(request: Request) -> bool:
    return request.url.path.startswith("/api/")


def _shaped(
    request: Request, body: dict[str, object], status: int, headers: dict[str, str] | None = None
) -> JSONResponse:
    if _ollama(request):
        error = body["error"]
        body = {"error": error["message"] if isinstance(error, dict) else error}
    return JSONResponse(body, status_code=status, headers=headers)


def install(app: FastAPI) -> None:
    """Register the exception handlers on ``app``."""

    @app.exception_handler(CodesparkError)
    async def _codespark(request: Request, exc: CodesparkError) -> JSONResponse:
        body = error_body(exc.message, exc.error_type, exc.param, exc.code)
        return _shaped(request, body, exc.status_code, error_headers(exc))

    @app.exception_handler(RequestValidationError)
    async def _validation(request: Request, exc: RequestValidationError) -> JSONResponse:
        message, param = _validation_message(exc)
        return _shaped(request, error_body(message, "invalid_request_error", param, "invalid_value"), 400)

    @app.exception_handler(StarletteHTTPException)
    async def _http(request: Request, exc: StarletteHTTPException) -> JSONResponse:
        kind = "not_found_error" if exc.status_code == 404 else "invalid_request_error"
        return _shaped(request, error_body(str(exc.detail), kind), exc.status_code)

    @app.exception_handler(Exception)
    async def _unexpected(_: Request, exc: Exception) -> JSONResponse:
        log.exception("unexpected error while serving a request")
        return JSONResponse(
            error_body("Internal error; the server logged the details.", "server_error"), status_code=500
        )
