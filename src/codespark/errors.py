"""Typed errors.  Every error says what to do next.

::

    CodesparkError                      base; never raised itself
    ├── ConfigError                     bad settings or flags           (CLI exit 2)
    ├── ProvisionError                  model download/assembly/verify failed
    ├── IndexingError                   the repo index could not be written (disk full); the old one stands
    ├── ModelNotFoundError              unknown model name               404 model_not_found
    ├── DatabaseNotFoundError           unknown database name            404 database_not_found
    ├── WorkspaceNotFoundError          unknown workspace name (/v1/fix) 404 workspace_not_found
    ├── InvalidRequestError             bad client input                 400 invalid_request_error
    │   ├── ContextLengthExceededError  prompt + max_tokens > n_ctx      400 context_length_exceeded
    │   ├── RequestTooLargeError        body over max_request_bytes      413 request_too_large
    │   ├── SqlParseError               the SQL does not parse           400 sql_parse_error
    │   ├── UnsafeSQLError              not a single read-only query     400 unsafe_sql
    │   └── DatabaseError               the database refused a statement 400 database_error
    │       ├── QueryTimeoutError       ran past the statement timeout   400 query_timeout
    │       └── DatabaseRefusedError    the connection's own guard said no 400 refused_by_database
    ├── ForbiddenError                  host or origin not allowed       403 forbidden
    ├── ApplyConflictError              the user changed a file a fix touches 409 apply_conflict
    ├── AuthenticationError             missing or unknown API key       401 invalid_api_key
    ├── RateLimitError                  over rate_limit_per_minute       429 rate_limit_exceeded
    └── EngineError                     the backend failed               503 engine_error
        ├── OverloadedError             the engine's queue is full       503 overloaded (Retry-After)
        ├── DatabaseUnavailableError    the database cannot be reached   503 database_unavailable
        └── UpstreamError               an upstream provider failed      502 upstream_error
            └── UpstreamUnavailable     unreachable within the retries   502 upstream_unavailable

The HTTP status, OpenAI error ``type`` and ``code`` live on the class, so the
server maps errors by type in one place (``server/app.py``), never by text.
"""

from __future__ import annotations


class CodesparkError(Exception):
    """Base of all codespark errors."""

    status_code: int = 500
    error_type: str = "server_error"
    code: str | None = None

    def __init__(self, message: str, *, param: str | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.param = param


class ConfigError(CodesparkError):
    """Settings or flags that cannot work together."""

    status_code = 500
    error_type = "configuration_error"


class ProvisionError(CodesparkError):
    """A model could not be downloaded, assembled or verified."""

    status_code = 503
    error_type = "provision_error"


class IndexingError(CodesparkError):
    """The repo index could not be updated (disk full, I/O error); its last complete state is kept."""

    status_code = 503
    error_type = "indexing_error"


class ModelNotFoundError(CodesparkError):
    """The ``model`` field names no engine or alias."""

    status_code = 404
    error_type = "invalid_request_error"
    code = "model_not_found"


class InvalidRequestError(CodesparkError):
    """The request is malformed or out of range."""

    status_code = 400
    error_type = "invalid_request_error"
    code = "invalid_value"


class ContextLengthExceededError(InvalidRequestError):
    """The prompt plus the requested tokens do not fit in the context window."""

    code = "context_length_exceeded"


class RequestTooLargeError(InvalidRequestError):
    """The request body is larger than ``max_request_bytes``."""

    status_code = 413
    code = "request_too_large"


class DatabaseNotFoundError(CodesparkError):
    """The request names a database that is not configured in ``[[databases]]``."""

    status_code = 404
    error_type = "invalid_request_error"
    code = "database_not_found"


class WorkspaceNotFoundError(CodesparkError):
    """The request names a workspace that is not configured in ``[[workspaces]]``."""

    status_code = 404
    error_type = "invalid_request_error"
    code = "workspace_not_found"


class SqlParseError(InvalidRequestError):
    """The SQL text does not parse in the database's dialect."""

    code = "sql_parse_error"


class UnsafeSQLError(InvalidRequestError):
    """The statement is not a single read-only query, or calls a function that is not allowed."""

    code = "unsafe_sql"


class DatabaseError(InvalidRequestError):
    """The database refused a statement, or the URL cannot be used."""

    code = "database_error"


class QueryTimeoutError(DatabaseError):
    """A statement ran past the timeout and was interrupted."""

    code = "query_timeout"


class DatabaseRefusedError(DatabaseError):
    """The database connection itself refused the statement (read-only, authorizer, no external access)."""

    code = "refused_by_database"


class ForbiddenError(CodesparkError):
    """The request's ``Host`` or ``Origin`` is not one this server answers (DNS rebinding, cross-site pages)."""

    status_code = 403
    error_type = "permission_error"
    code = "forbidden"


class AuthenticationError(CodesparkError):
    """No API key, or one that is not configured."""

    status_code = 401
    error_type = "invalid_request_error"
    code = "invalid_api_key"


class RateLimitError(CodesparkError):
    """Too many requests for this key; ``retry_after`` seconds until the next is allowed."""

    status_code = 429
    error_type = "rate_limit_error"
    code = "rate_limit_exceeded"

    def __init__(self, message: str, *, retry_after: float) -> None:
        super().__init__(message)
        self.retry_after = retry_after


class EngineError(CodesparkError):
    """The inference backend failed; the request may be retried."""

    status_code = 503
    error_type = "engine_error"


class UpstreamError(EngineError):
    """An upstream provider failed or answered with an error."""

    status_code = 502
    error_type = "upstream_error"


class OverloadedError(EngineError):
    """The engine's queue is full; ``retry_after`` seconds is a fair wait before trying again."""

    code = "overloaded"

    def __init__(self, message: str, *, retry_after: float) -> None:
        super().__init__(message)
        self.retry_after = retry_after


class DatabaseUnavailableError(EngineError):
    """The database server cannot be reached (down, wrong host or port, refused the connection)."""

    code = "database_unavailable"


class UpstreamUnavailable(UpstreamError):
    """The provider could not be reached (or kept failing) within the retries."""

    code = "upstream_unavailable"


class ApplyConflictError(CodesparkError):
    """A fix's files changed in the user's tree while it ran; nothing was applied."""

    status_code = 409
    error_type = "conflict"
    code = "apply_conflict"
