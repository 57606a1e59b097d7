"""Posting a review to GitHub through its REST API: the one Markdown comment (found by its marker and
edited in place on re-runs) and, optionally, review comments on the changed lines.

Reads ``GITHUB_TOKEN``, ``GITHUB_REPOSITORY``, ``GITHUB_API_URL`` and the pull request's number from
``GITHUB_EVENT_PATH`` (as Actions sets them), or the values passed in.
"""

from __future__ import annotations

import json
import os
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx

from codespark.errors import ConfigError, UpstreamUnavailable
from codespark.review.findings import Finding
from codespark.review.report import MARKER


@dataclass(frozen=True)
class Target:
    api: str
    repo: str  # owner/name
    number: int
    token: str

    @classmethod
    def from_env(cls, env: Mapping[str, str] | None = None, number: int | None = None) -> Target:
        env = os.environ if env is None else env
        token, repo = env.get("GITHUB_TOKEN", ""), env.get("GITHUB_REPOSITORY", "")
        if number is None and env.get("GITHUB_EVENT_PATH"):
            try:
                event = json.loads(Path(env["GITHUB_EVENT_PATH"]).read_text(encoding="utf-8"))
                number = int(event.get("pull_request", {}).get("number") or event.get("number"))
            except (OSError, ValueError, TypeError):
                number = None
        missing = [n for n, v in (("GITHUB_TOKEN", token), ("GITHUB_REPOSITORY", repo), ("a pull request number",
                   number)) if not v]  # fmt: skip
        if missing:
            raise ConfigError(f"--format github needs {', '.join(map(str, missing))} (set by Actions on "
                              "pull_request events; or pass --pr N).")  # fmt: skip
        assert number is not None
        return cls(env.get("GITHUB_API_URL", "https://api.github.com").rstrip("/"), repo, number, token)


def _client(target: Target) -> httpx.Client:
    headers = {"Authorization": f"Bearer {target.token}", "Accept": "application/vnd.github+json",
               "X-GitHub-Api-Version": "2022-11-28", "User-Agent": "codespark-review"}  # fmt: skip
    return httpx.Client(base_url=target.api, headers=headers, timeout=30)


def _check(response: httpx.Response) -> Any:
    if response.status_code >= 400:
        raise UpstreamUnavailable(f"GitHub answered {response.status_code} to {response.request.method} "
                                  f"{response.request.url.path}: {response.text[:300]}")  # fmt: skip
    return response.json() if response.content else None


def upsert_comment(target: Target, body: str) -> dict[str, Any]:
    """Edit the comment that carries the marker, or post it; returns the comment."""
    with _client(target) as client:
        page = 1
        while True:
            listed = _check(client.get(f"/repos/{target.repo}/issues/{target.number}/comments",
                                       params={"per_page": 100, "page": page}))  # fmt: skip
            for comment in listed or []:
                if MARKER in str(comment.get("body", "")):
                    if comment.get("body") == body:
                        return dict(comment)
                    return dict(_check(client.patch(f"/repos/{target.repo}/issues/comments/{comment['id']}",
                                                    json={"body": body})))  # fmt: skip
            if not listed or len(listed) < 100:
                break
            page += 1
        return dict(_check(client.post(f"/repos/{target.repo}/issues/{target.number}/comments", json={"body": body})))


def post_review_comments(target: Target, findings: Sequence[Finding], commit: str) -> int:
    """One review (event COMMENT: never a block) with a comment per finding on its changed line."""
    if not findings:
        return 0
    comments = []
    for f in findings:
        comment: dict[str, Any] = {"path": f.path, "line": f.end, "side": "RIGHT",
                                   "body": f"**{f.severity}** {f.category} ({f.rule_id}): {f.message}"}  # fmt: skip
        if f.end > f.start:
            comment |= {"start_line": f.start, "start_side": "RIGHT"}
        comments.append(comment)
    with _client(target) as client:
        _check(client.post(f"/repos/{target.repo}/pulls/{target.number}/reviews",
                           json={"commit_id": commit, "event": "COMMENT", "comments": comments}))  # fmt: skip
    return len(comments)
