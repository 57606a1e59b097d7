"""``codespark ci init github|gitlab``: the shadow-review job for a project's CI.

- GitHub: ``.github/workflows/codespark-review.yml`` on pull requests, least permissions, the pip and
  codespark caches (the built llama-cpp-python wheel and the models) kept between runs, the review in
  shadow mode (it never fails the job), SARIF uploaded to code scanning, the one comment posted or edited.
- GitLab: a ``codespark-review`` job on merge requests with a Code Quality report artifact.

Existing files are never overwritten without ``force``.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from codespark.errors import InvalidRequestError

KINDS = ("github", "gitlab")
DEFAULT_MODEL = "qwen2.5-coder-1.5b-instruct"  # the codex model, which the review uses

GITHUB = """\
# codespark review in shadow mode: findings as one PR comment and in code scanning, never a failed check.
# Written by `codespark ci init github`.
name: codespark review
on:
  pull_request:
permissions:
  contents: read
  pull-requests: write
  security-events: write
concurrency:
  group: codespark-review-${{{{ github.event.pull_request.number }}}}
  cancel-in-progress: true
jobs:
  review:
    runs-on: ubuntu-latest
    timeout-minutes: 60
    env:
      CODESPARK_PACKAGE: "{package}"
    steps:
      - uses: actions/checkout@v4
        with:
          fetch-depth: 0
      - uses: actions/setup-python@v5
        with:
          python-version: "3.11"
      - name: Cache the built llama-cpp-python wheel and the models
        uses: actions/cache@v4
        with:
          path: |
            ~/.cache/pip
            ~/.cache/codespark
          key: codespark-${{{{ runner.os }}}}-${{{{ hashFiles('.github/workflows/codespark-review.yml') }}}}
      - name: Install codespark and its model
        run: |
          python -m pip install "$CODESPARK_PACKAGE"
          codespark models --pull {model}
      - name: Review (shadow mode)
        continue-on-error: true
        env:
          GITHUB_TOKEN: ${{{{ secrets.GITHUB_TOKEN }}}}
        run: codespark review --base "origin/${{{{ github.base_ref }}}}" --format github --sarif-output codespark.sarif
      - name: Upload to code scanning
        if: ${{{{ hashFiles('codespark.sarif') != '' }}}}
        uses: github/codeql-action/upload-sarif@v3
        with:
          sarif_file: codespark.sarif
          category: codespark
"""

GITLAB = """\
# codespark review in shadow mode: a Code Quality report on merge requests, never a failed pipeline.
# Written by `codespark ci init gitlab`.
codespark-review:
  stage: test
  image: python:3.11
  rules:
    - if: $CI_PIPELINE_SOURCE == "merge_request_event"
  allow_failure: true
  timeout: 1h
  variables:
    GIT_DEPTH: "0"
    XDG_CACHE_HOME: "$CI_PROJECT_DIR/.cache"
    PIP_CACHE_DIR: "$CI_PROJECT_DIR/.cache/pip"
    CODESPARK_PACKAGE: "{package}"
  cache:
    key: codespark
    paths:
      - .cache/
  script:
    - git fetch origin "$CI_MERGE_REQUEST_TARGET_BRANCH_NAME"
    - python -m pip install "$CODESPARK_PACKAGE"
    - codespark models --pull {model}
    - >-
      codespark review --base "origin/$CI_MERGE_REQUEST_TARGET_BRANCH_NAME"
      --format codequality --output gl-code-quality-report.json
  artifacts:
    when: always
    reports:
      codequality: gl-code-quality-report.json
    paths:
      - gl-code-quality-report.json
"""


@dataclass(frozen=True)
class Written:
    path: Path
    note: str


def render(kind: str, package: str = "codespark", model: str = DEFAULT_MODEL) -> str:
    if kind not in KINDS:
        raise InvalidRequestError(f"Unknown CI {kind!r}: use github or gitlab.", param="kind")
    template = GITHUB if kind == "github" else GITLAB
    return template.format(package=package, model=model)


def init(root: Path, kind: str, package: str = "codespark", force: bool = False) -> Written:
    text = render(kind, package)
    if kind == "github":
        target = root / ".github" / "workflows" / "codespark-review.yml"
        note = "Commit it and open a pull request: the review comments on it within one run."
    else:
        target = root / ".gitlab-ci.yml"
        note = "Commit it and open a merge request: the findings show in its Code Quality widget."
        if target.exists() and not force:
            target = root / ".gitlab" / "codespark-review.yml"
            note = ("Your .gitlab-ci.yml is kept. Add to it:\n  include:\n    - local: .gitlab/codespark-review.yml\n"
                    "and make sure it has a `test` stage.")  # fmt: skip
    if target.exists() and not force:
        raise InvalidRequestError(f"{target} exists: pass --force to replace it.", param="force")
    target.parent.mkdir(parents=True, exist_ok=True)
    target.write_text(text, encoding="utf-8")
    return Written(target, note)
