"""Typed errors.  Every error says what to do next.

::

    CodesparkError                      base; never raised itself
    ├── ConfigError                     bad settings or flags           (CLI exit 2)
    ├── ProvisionError                  model download/assembly/verify failed
    ├── ModelNotFoundError              unknown model name               404 model_not_found
    ├── InvalidRequestError             bad client input                 400 invalid_request_error
    │   ├── ContextLengthExceededError  prompt + max_tokens > n_ctx      400 context_length_exceeded
    │   └── RequestTooLargeError        body over max_request_bytes      413 request_too_large
    ├── AuthenticationError             missing or unknown API key       401 invalid_api_key
    ├── RateLimitError                  over rate_limit_per_minute       429 rate_limit_exceeded
    └── EngineError                     the backend failed               503 engine_error
        └── UpstreamError               an upstream provider failed      502 upstream_error

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
