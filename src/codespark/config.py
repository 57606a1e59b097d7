"""Settings: the one source for environment variables, the config file and CLI flags.

Precedence: CLI flags > ``CODESPARK_*`` environment variables > the TOML config
file (``--config`` or ``CODESPARK_CONFIG``) > defaults.  Every field has a
description; ``codespark serve --help`` and the README table come from it.
"""

from __future__ import annotations

import os
import re
from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel, Field, ValidationError, model_validator
from pydantic_settings import (
    BaseSettings,
    PydanticBaseSettingsSource,
    SettingsConfigDict,
    TomlConfigSettingsSource,
)

from codespark.errors import ConfigError, InvalidRequestError


def default_cache_dir() -> Path:
    base = os.environ.get("XDG_CACHE_HOME") or str(Path.home() / ".cache")
    return Path(base) / "codespark"


# How an upstream does fill-in-the-middle (see engine/remote_fim.py).
FimKind = Literal["none", "infill", "suffix", "qwen", "starcoder", "codellama", "deepseek"]


class UpstreamSettings(BaseModel):
    """One OpenAI-compatible provider (vLLM, llama-server, a hosted API)."""

    model_config = {"extra": "forbid"}

    name: str = Field(pattern=r"^[a-z][a-z0-9_\-]{0,31}$", description="Short name, used in headers and metrics.")
    base_url: str = Field(description="Base URL including /v1, e.g. http://gpu-box:8000/v1.")
    model: str = Field(description="Model name the provider serves.")
    api_key_env: str | None = Field(None, description="Environment variable holding the provider's API key.")
    api_key_file: Path | None = Field(None, description="File holding the provider's API key.")
    timeout_s: float = Field(120.0, gt=0, description="Read timeout while streaming an answer.")
    connect_timeout_s: float = Field(5.0, gt=0, description="Timeout for connecting and for the response headers.")
    retries: int = Field(2, ge=0, le=10, description="Retries (with exponential backoff) before falling back.")
    cooldown_s: float = Field(30.0, ge=0, description="After a failure, go straight to the fallback for this long.")
    fim: FimKind = Field(
        "none",
        description="Fill-in-the-middle here too: 'infill' (a llama-server), 'suffix' (OpenAI completions with "
        "suffix), or the model's raw prompt format sent as a plain prompt: 'qwen', 'starcoder', 'codellama', "
        "'deepseek' (vLLM).  'none': keystrokes stay local.",
    )

    def api_key(self) -> str | None:
        if self.api_key_env:
            value = os.environ.get(self.api_key_env)
            if not value:
                raise ConfigError(f"Upstream {self.name!r}: set the environment variable {self.api_key_env}.")
            return value.strip()
        if self.api_key_file:
            try:
                return self.api_key_file.read_text().strip()
            except OSError as exc:
                raise ConfigError(f"Upstream {self.name!r}: cannot read api_key_file ({exc}).") from exc
        return None


class DatabaseSettings(BaseModel):
    """One database the SQL assistant may answer questions about over HTTP (``[[databases]]``)."""

    model_config = {"extra": "forbid"}

    name: str = Field(pattern=r"^[A-Za-z][A-Za-z0-9_\-]{0,63}$", description="The name requests use (`db`).")
    url: str = Field(description="SQLAlchemy URL: sqlite:///shop.db, duckdb:///data.duckdb, postgresql://…")
    description: str = Field("", description="What is in it, shown by GET /v1/sql/databases.")
    default: bool = Field(False, description="Answer requests that name no database from this one.")


class WorkspaceSettings(BaseModel):
    """A project ``POST /v1/fix`` may repair (``[[workspaces]]``); requests name it, never a path."""

    model_config = {"extra": "forbid"}

    name: str = Field(pattern=r"^[A-Za-z][A-Za-z0-9_\-]{0,63}$", description="The name requests use.")
    path: Path = Field(description="The project's root.")
    test_cmd: str | None = Field(None, description="Its test command (default: detected). Clients cannot set it.")
    allow_apply: bool = Field(False, description="Let requests put a finished fix into this tree (apply: true).")


DEFAULT_NEVER_SEND = [".env", ".env.*", "*.pem", "*.key", "*.p12", "*.pfx", "id_rsa*", "id_ed25519*", ".netrc"]


class Settings(BaseSettings):
    """codespark settings."""

    model_config = SettingsConfigDict(env_prefix="CODESPARK_", extra="forbid", validate_default=True)

    host: str = Field("127.0.0.1", description="Address the server binds to.")
    port: int = Field(8080, ge=0, le=65535, description="TCP port the server listens on (0 picks a free one).")
    spark_model: str = Field(
        "qwen2.5-coder-0.5b-instruct",
        description="Model for the spark engine (keystroke FIM): a catalog name or a path to a .gguf file.",
    )
    codex_model: str = Field(
        "qwen2.5-coder-1.5b-instruct",
        description="Model for the codex engine (chat, deeper work): a catalog name, a .gguf path, "
        "or 'none' to serve spark only.",
    )
    cache_dir: Path = Field(
        default_factory=default_cache_dir,
        description="Where provisioned models and caches live.",
    )
    auto_provision: bool = Field(True, description="Download and assemble catalog models on start if they are missing.")
    n_ctx: int = Field(8192, ge=256, le=131072, description="Context window per engine, in tokens.")
    n_batch: int = Field(512, ge=16, le=8192, description="Prompt tokens evaluated per llama.cpp batch.")
    n_threads: int | None = Field(None, ge=1, description="CPU threads per engine (default: all cores).")
    flash_attn: bool = Field(
        True,
        description="Use llama.cpp's flash attention kernels (6-24% faster prefill here, same FIM pass rate; "
        "see docs/BENCHMARKS.md section 2).",
    )
    repack: bool = Field(
        False,
        description="Let llama.cpp repack weights for the CPU (its 'extra buffer types'). Off by default: with "
        "our AVX-512 build it slows prefill (the 1.5B by ~30%) for ~14% faster decode; see docs/BENCHMARKS.md.",
    )
    cache_reuse: int = Field(
        32,
        ge=0,
        le=4096,
        description="For FIM clients that set a latency budget, reuse cached runs of at least this many "
        "tokens out of place (llama-server's --cache-reuse, plus runs after inserted text), so a cursor "
        "jump evaluates only what changed; other requests reuse the exact common prefix. 0: off. "
        "See docs/BENCHMARKS.md section 15.",
    )
    max_tokens_limit: int = Field(4096, ge=1, description="Largest max_tokens a request may ask for.")
    default_fim_max_tokens: int = Field(128, ge=1, description="max_tokens for FIM requests that do not set it.")
    fim_block_stops: bool = Field(
        True,
        description="End FIM answers like an editor: one line when code follows in the same block, "
        "and at the end of the block otherwise (see engine/fim.py FimStops).",
    )
    spec_ngram: bool = Field(
        True, description="Speculative decoding by prompt lookup (n-gram drafts) for greedy requests; lossless."
    )
    codex_draft_model: str = Field(
        "none",
        description="Draft model for codex's speculative decoding (a catalog name or .gguf sharing its tokenizer, "
        "e.g. the spark model); 'none' uses n-gram drafting only.",
    )
    router_fim: Literal["auto", "spark", "codex"] = Field(
        "auto",
        description="Who answers inline FIM: 'auto' (codex when its estimated time to first token fits the "
        "latency budget, else spark), 'spark' or 'codex'.",
    )
    fim_latency_budget_ms: float = Field(
        250.0, ge=0, description="Latency budget for FIM routing when the client sends none."
    )
    max_queue: int = Field(
        16,
        ge=0,
        description="Requests that may wait per engine behind the one running; more are shed with 503 and "
        "Retry-After instead of queueing without bound.",
    )
    fim_max_queue: int = Field(
        2,
        ge=0,
        description="Keystroke (FIM) requests that may wait per engine: a keystroke that would wait behind "
        "more is shed at once with 503 (the next keystroke asks again) instead of answering seconds late.",
    )
    session_cache_mb: int = Field(
        512, ge=0, description="RAM for parked KV caches of idle editing sessions, per engine (LRU)."
    )
    log_level: Literal["debug", "info", "warning", "error"] = Field(
        "info", description="Log level: debug, info, warning or error."
    )
    repo_dir: Path | None = Field(
        None, description="Repository to index (tree-sitter, SQLite) for cross-file context in completions."
    )
    context_tokens: int = Field(768, ge=0, le=8192, description="Token budget for repo context in a completion.")
    context_mode: Literal["none", "similar", "full"] = Field(
        "full",
        description="Repo context: 'full' (definitions of the names near the cursor, then similar code), "
        "'similar' (BM25 snippets only) or 'none'.",
    )
    mgd: Literal["on", "off", "members-only"] = Field(
        "on",
        description="Monitor-guided decoding: mask names that do not exist while generating (SQL tables and "
        "columns from the schema; Python members after 'obj.' and imported names, from Jedi). 'members-only': "
        "Python members only. See docs/BENCHMARKS.md section 14.",
    )
    chat_check_names: bool = Field(
        True,
        description="After a chat answer, check its Python code blocks for imports and module attributes that do "
        "not exist (Jedi, against the repo and the installed packages) and list them in the response's "
        "'codespark_checks'.",
    )
    mgd_budget_ms: float = Field(
        30.0,
        ge=0,
        le=2000,
        description="How long a completion step waits for the Python monitor's analysis at a trigger before "
        "going on unconstrained.",
    )
    databases: list[DatabaseSettings] = Field(
        default_factory=list,
        description="Databases the SQL assistant answers about over HTTP ([[databases]] tables: name, url, "
        "description, default). Requests name one; they never pass a URL.",
    )
    workspaces: list[WorkspaceSettings] = Field(
        default_factory=list,
        description="Projects POST /v1/fix may repair ([[workspaces]] tables: name, path, test_cmd, allow_apply). "
        "Requests name one; the tests it runs are its own.",
    )
    sql_db: str | None = Field(
        None,
        description="Database URL whose schema is added as context to completions in .sql files "
        "(the SQL assistant takes its database per request).",
    )
    upstreams: list[UpstreamSettings] = Field(
        default_factory=list,
        description="OpenAI-compatible providers ([[upstreams]] tables in the config file; JSON in the env).",
    )
    codex_upstream: str | None = Field(
        None,
        description="Name of the upstream that serves codex traffic (chat, plain completions); "
        "local codex answers when it is down.",
    )
    never_send: list[str] = Field(
        default_factory=lambda: list(DEFAULT_NEVER_SEND),
        description="Gitignore-style globs of files whose content never goes upstream (plus .codesparkignore).",
    )
    workspace_dir: Path = Field(
        default_factory=Path.cwd, description="Workspace root; its .codesparkignore adds never-send globs."
    )
    zero_retention: bool = Field(
        True,
        description="Never write prompt or completion content to disk, logs or metric labels "
        "(log lines pass through the redactor too).",
    )
    log_prompts: bool = Field(False, description="Log request bodies (debugging). Needs zero_retention off.")
    session_ttl_s: float = Field(
        900.0, gt=0, description="Seconds after which an idle session's KV cache and text are dropped from RAM."
    )
    api_keys: list[str] = Field(
        default_factory=list,
        description="Hashes of accepted API keys ('sha256:<hex>', from `codespark keys new`). "
        "Empty: no auth, loopback only.",
    )
    allowed_hosts: list[str] = Field(
        default_factory=list,
        description="Host names served besides localhost, 127.0.0.1 and [::1] ('*.example.com' wildcards; '*' "
        "for any). Other Host headers get a 403: the guard against DNS rebinding.",
    )
    cors_origins: list[str] = Field(
        default_factory=list,
        description="Web page origins (https://app.example.com) allowed to call the server from a browser; "
        "they get CORS headers. Empty: no CORS headers, and only loopback pages may send requests.",
    )
    rate_limit_per_minute: int = Field(
        0, ge=0, description="Requests per minute per API key (per client address without keys); 0: no limit."
    )
    max_request_bytes: int = Field(4 * 1024 * 1024, ge=1024, description="Largest request body accepted (413 above).")

    @model_validator(mode="after")
    def _consistent(self) -> Settings:
        names = [u.name for u in self.upstreams]
        if len(set(names)) != len(names):
            raise ValueError(f"upstream names must be unique, got {names}")
        if self.codex_upstream is not None and self.codex_upstream not in names:
            raise ValueError(f"codex_upstream {self.codex_upstream!r} names no upstream; define it in [[upstreams]]")
        databases = [d.name for d in self.databases]
        if len(set(databases)) != len(databases):
            raise ValueError(f"database names must be unique, got {databases}")
        if sum(d.default for d in self.databases) > 1:
            raise ValueError("at most one of [[databases]] may be the default")
        if self.log_prompts and self.zero_retention:
            raise ValueError("log_prompts writes prompts to the log: turn zero_retention off to use it")
        for key in self.api_keys:
            if not re.fullmatch(r"sha256:[0-9a-f]{64}", key):
                raise ValueError("api_keys holds hashes ('sha256:<64 hex>'); make one with `codespark keys new`")
        return self

    @classmethod
    def settings_customise_sources(
        cls,
        settings_cls: type[BaseSettings],
        init_settings: PydanticBaseSettingsSource,
        env_settings: PydanticBaseSettingsSource,
        dotenv_settings: PydanticBaseSettingsSource,
        file_secret_settings: PydanticBaseSettingsSource,
    ) -> tuple[PydanticBaseSettingsSource, ...]:
        return (init_settings, env_settings, TomlConfigSettingsSource(settings_cls))

    def check_max_tokens(self, value: int, param: str = "max_tokens") -> int:
        """``value`` if it is within ``max_tokens_limit``, else a 400 saying so."""
        if value > self.max_tokens_limit:
            raise InvalidRequestError(
                f"{param}={value} is above this server's limit of {self.max_tokens_limit}. "
                "Ask for fewer tokens (the limit is the max_tokens_limit setting).",
                param=param,
            )
        return value

    @property
    def models_dir(self) -> Path:
        return self.cache_dir / "models"


def _problem(loc: tuple[int | str, ...], message: str) -> str:
    message = message.removeprefix("Value error, ")
    return f"{'.'.join(str(x) for x in loc)}: {message}" if loc else message


def load_settings(config_file: Path | None = None, **overrides: Any) -> Settings:
    """Build settings from flags (``overrides``), env and the config file.

    ``None`` overrides are ignored, so unset CLI flags fall through.
    """
    flags = {k: v for k, v in overrides.items() if v is not None}
    path = config_file or (Path(p) if (p := os.environ.get("CODESPARK_CONFIG")) else None)
    cls: type[Settings] = Settings
    if path is not None:
        if not path.is_file():
            raise ConfigError(f"Config file {path} does not exist. Create it or drop --config/CODESPARK_CONFIG.")

        class _FromFile(Settings):
            model_config = SettingsConfigDict(**{**Settings.model_config, "toml_file": path})

        cls = _FromFile
    try:
        return cls(**flags)
    except ValidationError as exc:
        problems = "; ".join(_problem(err["loc"], err["msg"]) for err in exc.errors())
        raise ConfigError(f"Invalid settings: {problems}") from exc
