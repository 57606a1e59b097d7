"""The ``[[workspaces]]`` HTTP requests may name: one lookup for the fix and migrate services."""

from __future__ import annotations

from collections.abc import Mapping

from codespark.config import WorkspaceSettings
from codespark.errors import ForbiddenError, WorkspaceNotFoundError


def configured(workspaces: Mapping[str, WorkspaceSettings], name: str, apply: bool) -> WorkspaceSettings:
    """The workspace called ``name`` (404 when there is none), refusing ``apply`` where it is not allowed (403)."""
    found = workspaces.get(name)
    if found is None:
        names = ", ".join(workspaces) or "none are configured ([[workspaces]])"
        raise WorkspaceNotFoundError(f"No workspace {name!r}: use one of {names}.", param="workspace")
    if apply and not found.allow_apply:
        raise ForbiddenError(f"Workspace {found.name!r} does not allow apply; set allow_apply = true for it.")
    return found
