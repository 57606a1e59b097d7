"""FastAPI dependencies: the typed server state, and who is calling.

They are ``async`` on purpose: FastAPI runs a plain ``def`` dependency in its thread pool, and
that hand-off cost 0.25 ms per request on the keystroke path (measured, docs/BENCHMARKS.md).
"""

from __future__ import annotations

from typing import Annotated

from fastapi import Depends, Request

from codespark.services.state import AppState


async def app_state(request: Request) -> AppState:
    state: AppState = request.app.state.codespark
    return state


async def caller(request: Request) -> str:
    """Who asks: the API key's identity (set by ``AccessControl``), else the client's address."""
    identity = getattr(request.state, "identity", None)
    if isinstance(identity, str):
        return identity
    return f"client:{request.client.host if request.client else 'local'}"


State = Annotated[AppState, Depends(app_state)]
Caller = Annotated[str, Depends(caller)]
