"""Shared request plumbing for the route modules: engine lookup, limits, logging."""

from __future__ import annotations

import logging

from fastapi import Request

from codespark.config import Settings
from codespark.engine.engine import Engine
from codespark.engine.loader import Engines
from codespark.errors import InvalidRequestError, ModelNotFoundError
from codespark.server.protocol import _Request

log = logging.getLogger("codespark.server")


def settings_of(request: Request) -> Settings:
    settings: Settings = request.app.state.settings
    return settings


def pick_engine(request: Request, model: str | None) -> tuple[str, Engine]:
    engines: Engines = request.app.state.engines
    found = engines.lookup(model)
    if found is None:
        names = ", ".join(engines.names() + sorted(engines.aliases))
        raise ModelNotFoundError(f"The model {model!r} does not exist here. Use one of: {names}.", param="model")
    return found


def note_unknown_fields(body: _Request, endpoint: str) -> None:
    unknown = body.unknown_fields()
    if unknown:
        log.info("%s: ignoring unknown fields %s", endpoint, ", ".join(unknown))


def check_max_tokens(settings: Settings, value: int, param: str = "max_tokens") -> int:
    if value > settings.max_tokens_limit:
        raise InvalidRequestError(
            f"{param}={value} is above this server's limit of {settings.max_tokens_limit}. "
            "Ask for fewer tokens (the limit is the max_tokens_limit setting).",
            param=param,
        )
    return value
