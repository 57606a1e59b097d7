"""``POST /v1/review``: findings on a unified diff, for editors.

The diff (and, optionally, the new and old contents of its files) is reviewed as sent: the deterministic
checks, and the model on each changed function.  No code from the request runs on the server (the
differential check needs a repository: ``codespark review``).
"""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter
from pydantic import Field

from codespark.review.findings import DEFAULT_THRESHOLD
from codespark.review.run import ReviewOptions
from codespark.server.deps import State
from codespark.server.protocol import _Request

router = APIRouter()


class ReviewBody(_Request):
    """codespark: review a diff."""

    diff: str = Field(description="A unified diff (git diff output).", max_length=2 * 2**20)
    files: dict[str, str] = Field(default_factory=dict, description="New contents of changed files, by path.")
    base_files: dict[str, str] = Field(default_factory=dict, description="Old contents of changed files, by path.")
    model: bool = Field(True, description="Ask the model about each changed function (false: deterministic checks).")
    threshold: float = Field(DEFAULT_THRESHOLD, ge=0, le=1, description="Findings below it are returned, not shown.")
    max_per_file: int = Field(3, ge=1, le=50)
    max_units: int = Field(20, ge=0, le=200)


@router.post("/v1/review")
async def review(body: ReviewBody, state: State) -> dict[str, Any]:
    body.log_unknown("/v1/review")
    options = ReviewOptions(model=body.model, verify=False, per_file=body.max_per_file, threshold=body.threshold,
                            max_units=body.max_units)  # fmt: skip
    result = await state.review.review_diff(body.diff, body.files, body.base_files, options)
    return {"object": "codespark.review", **result.as_dict()}
