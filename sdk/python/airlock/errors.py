"""Typed errors of the Airlock SDK.

Every error the daemon returns has one shape, ``{"error": {"code", "message", "field"?, "details"?}}``
(see ``api/openapi.yaml``). The SDK turns it into an instance of the most specific class below; each
carries ``.status`` (HTTP status, or ``None`` for client-side errors), ``.code`` (the stable,
machine-readable code such as ``sandbox_not_found``), ``.message``, ``.field`` and ``.details``.

Branch on the class (``except airlock.errors.NotFoundError``) or on ``.code``.

A command that exits non-zero is *not* an error: :meth:`airlock.CommandResult.check` raises
:class:`CommandExitError` on demand. A command killed at its ``timeout`` raises :class:`TimeoutError`
(with the partial result in ``.result``).
"""
from __future__ import annotations

from typing import TYPE_CHECKING, Any, Dict, Mapping, Optional, Type

if TYPE_CHECKING:  # pragma: no cover
    from .models import CommandResult

__all__ = [
    "AirlockError",
    "APIConnectionError",
    "AuthenticationError",
    "PermissionDeniedError",
    "NotFoundError",
    "SandboxNotFoundError",
    "ProcessNotFoundError",
    "PathNotFoundError",
    "RouteNotFoundError",
    "ConflictError",
    "SandboxNotRunningError",
    "ProcessNotRunningError",
    "StdinClosedError",
    "PathExistsError",
    "InvalidArgumentError",
    "PayloadTooLargeError",
    "RateLimitError",
    "QuotaExceededError",
    "TimeoutError",
    "ServiceUnavailableError",
    "InsufficientStorageError",
    "InternalServerError",
    "CommandExitError",
    "WebSocketError",
    "STATUS_BY_CODE",
    "error_from_response",
    "error_from_detail",
]

# The error table of api/openapi.yaml: code -> HTTP status. Used for errors that arrive inside a stream
# (an `error` event carries the ErrorDetail without a status of its own).
STATUS_BY_CODE: Dict[str, int] = {
    "invalid_json": 400,
    "invalid_field": 400,
    "invalid_parameter": 400,
    "unauthenticated": 401,
    "forbidden": 403,
    "permission_denied": 403,
    "route_not_found": 404,
    "sandbox_not_found": 404,
    "process_not_found": 404,
    "path_not_found": 404,
    "key_not_found": 404,
    "tenant_not_found": 404,
    "method_not_allowed": 405,
    "sandbox_not_running": 409,
    "process_not_running": 409,
    "stdin_closed": 409,
    "not_a_tty": 409,
    "path_exists": 409,
    "not_a_directory": 409,
    "is_a_directory": 409,
    "not_a_regular_file": 409,
    "directory_not_empty": 409,
    "idempotency_key_in_use": 409,
    "payload_too_large": 413,
    "unsupported_media_type": 415,
    "range_not_satisfiable": 416,
    "unknown_template": 422,
    "unknown_user": 422,
    "limit_exceeded": 422,
    "idempotency_key_reused": 422,
    "file_error": 422,
    "upgrade_required": 426,
    "quota_exceeded": 429,
    "headers_too_large": 431,
    "internal": 500,
    "agent_error": 502,
    "no_capacity": 503,
    "unavailable": 503,
    "disk_full": 507,
}


class AirlockError(Exception):
    """Base class of every error raised by the SDK.

    Attributes:
        status: the HTTP status, or ``None`` when the error did not come from an HTTP response.
        code: the API's error code (``sandbox_not_found``, ``quota_exceeded``, ...) or an SDK code
            (``connection_error``, ``request_timeout``, ``command_timeout``, ``command_exit``).
        message: a human-readable explanation.
        field: the request field or parameter at fault (400 errors), if any.
        details: machine-readable specifics (``state``, ``limit_bytes``, ``errno``, ``quota``, ...).
        retry_after: seconds from the ``Retry-After`` header (429, 503), if sent.
    """

    def __init__(
        self,
        message: str,
        *,
        status: Optional[int] = None,
        code: Optional[str] = None,
        field: Optional[str] = None,
        details: Optional[Mapping[str, Any]] = None,
        retry_after: Optional[float] = None,
    ) -> None:
        super().__init__(message)
        self.message = message
        self.status = status
        self.code = code
        self.field = field
        self.details: Dict[str, Any] = dict(details or {})
        self.retry_after = retry_after

    def __str__(self) -> str:
        parts = []
        if self.status is not None:
            parts.append(str(self.status))
        if self.code:
            parts.append(self.code)
        prefix = " ".join(parts)
        text = f"{prefix}: {self.message}" if prefix else self.message
        if self.field:
            text += f" (field: {self.field})"
        return text

    def __repr__(self) -> str:
        return (f"{type(self).__name__}(status={self.status!r}, code={self.code!r}, "
                f"message={self.message!r})")


class APIConnectionError(AirlockError):
    """The daemon could not be reached, or the connection broke before a complete answer."""


class AuthenticationError(AirlockError):
    """401 ``unauthenticated``: the API key is missing, unknown or revoked."""


class PermissionDeniedError(AirlockError):
    """403: ``forbidden`` (needs an admin key) or ``permission_denied`` (inside the sandbox)."""


class NotFoundError(AirlockError):
    """404: the sandbox, process, path, key or route does not exist (for this tenant)."""


class SandboxNotFoundError(NotFoundError):
    """404 ``sandbox_not_found``: no such sandbox for this API key's tenant (or it was purged)."""


class ProcessNotFoundError(NotFoundError):
    """404 ``process_not_found``."""


class PathNotFoundError(NotFoundError):
    """404 ``path_not_found``: the path does not exist inside the sandbox."""


class RouteNotFoundError(NotFoundError):
    """404 ``route_not_found``: the daemon does not serve this endpoint (an older daemon?)."""


class ConflictError(AirlockError):
    """409: the target's current state forbids the operation."""


class SandboxNotRunningError(ConflictError):
    """409 ``sandbox_not_running``: the sandbox is stopped or terminated (``details['state']``)."""


class ProcessNotRunningError(ConflictError):
    """409 ``process_not_running``: the process has exited."""


class StdinClosedError(ConflictError):
    """409 ``stdin_closed``: the process's stdin was closed or never opened."""


class PathExistsError(ConflictError):
    """409 ``path_exists``: the target already exists (rename without ``overwrite``, ...)."""


class InvalidArgumentError(AirlockError):
    """400 or 422 (and 413, 415, 416, 431): the request is malformed, or valid but not doable here
    (unknown template or user, a value above the daemon's policy)."""


class PayloadTooLargeError(InvalidArgumentError):
    """413 ``payload_too_large`` (``details['limit_bytes']``)."""


class RateLimitError(AirlockError):
    """429: a quota of the tenant or the sandbox would be exceeded; see ``retry_after``."""


class QuotaExceededError(RateLimitError):
    """429 ``quota_exceeded`` (``details['quota']``, ``details['limit']``, ``details['used']``)."""


class TimeoutError(AirlockError):  # noqa: A001 - the SDK's own, as in E2B
    """A timeout: a command killed at its ``timeout`` (code ``command_timeout``; the partial
    :class:`~airlock.CommandResult` is in ``.result``), a request that got no answer in time (code
    ``request_timeout``), or a client-side wait that ran out (code ``wait_timeout``)."""

    def __init__(self, message: str, *, result: Optional["CommandResult"] = None, **kwargs: Any) -> None:
        super().__init__(message, **kwargs)
        self.result = result


class ServiceUnavailableError(AirlockError):
    """503: ``no_capacity`` (the host is full) or ``unavailable`` (starting or shutting down)."""


class InsufficientStorageError(AirlockError):
    """507 ``disk_full``: the sandbox's writable layer is full."""


class InternalServerError(AirlockError):
    """500 ``internal`` or 502 ``agent_error``, or an answer the SDK cannot understand."""


class WebSocketError(AirlockError):
    """The WebSocket attach failed or was closed abnormally."""


class CommandExitError(AirlockError):
    """A command exited non-zero; raised by :meth:`airlock.CommandResult.check`, never implicitly.

    Attributes ``result``, ``exit_code``, ``stdout``, ``stderr``, ``signal`` and ``reason`` come from the
    command's result."""

    def __init__(self, result: "CommandResult") -> None:
        how = f"signal {result.signal}" if result.signal else f"exit code {result.exit_code}"
        message = f"command failed with {how} ({result.reason})"
        if result.error:
            message += f": {result.error}"
        elif result.stderr:
            tail = result.stderr.strip().splitlines()[-1:] if result.stderr.strip() else []
            if tail:
                message += f": {tail[0][:200]}"
        super().__init__(message, code="command_exit")
        self.result = result
        self.exit_code = result.exit_code
        self.stdout = result.stdout
        self.stderr = result.stderr
        self.signal = result.signal
        self.reason = result.reason


_BY_CODE: Dict[str, Type[AirlockError]] = {
    "sandbox_not_found": SandboxNotFoundError,
    "process_not_found": ProcessNotFoundError,
    "path_not_found": PathNotFoundError,
    "route_not_found": RouteNotFoundError,
    "sandbox_not_running": SandboxNotRunningError,
    "process_not_running": ProcessNotRunningError,
    "stdin_closed": StdinClosedError,
    "path_exists": PathExistsError,
    "payload_too_large": PayloadTooLargeError,
    "quota_exceeded": QuotaExceededError,
}

_BY_STATUS: Dict[int, Type[AirlockError]] = {
    400: InvalidArgumentError,
    401: AuthenticationError,
    403: PermissionDeniedError,
    404: NotFoundError,
    409: ConflictError,
    413: PayloadTooLargeError,
    415: InvalidArgumentError,
    416: InvalidArgumentError,
    422: InvalidArgumentError,
    429: RateLimitError,
    431: InvalidArgumentError,
    500: InternalServerError,
    502: InternalServerError,
    503: ServiceUnavailableError,
    504: TimeoutError,
    507: InsufficientStorageError,
}


def _class_for(status: Optional[int], code: Optional[str]) -> Type[AirlockError]:
    if code and code in _BY_CODE:
        return _BY_CODE[code]
    if status is not None:
        if status in _BY_STATUS:
            return _BY_STATUS[status]
        if 500 <= status < 600:
            return InternalServerError
    return AirlockError


def error_from_detail(detail: Mapping[str, Any], status: Optional[int] = None,
                      retry_after: Optional[float] = None) -> AirlockError:
    """Builds the error for an ``ErrorDetail`` object (``{"code", "message", ...}``)."""
    code = detail.get("code") if isinstance(detail.get("code"), str) else None
    if status is None and code:
        status = STATUS_BY_CODE.get(code)
    message = detail.get("message") if isinstance(detail.get("message"), str) else None
    field = detail.get("field") if isinstance(detail.get("field"), str) else None
    details = detail.get("details") if isinstance(detail.get("details"), dict) else None
    cls = _class_for(status, code)
    return cls(message or (code or "error"), status=status, code=code, field=field, details=details,
               retry_after=retry_after)


def error_from_response(status: int, body: bytes, retry_after: Optional[float] = None) -> AirlockError:
    """Builds the error for an HTTP error response (any status >= 400), whatever its body."""
    import json

    detail: Mapping[str, Any] = {}
    try:
        parsed = json.loads(body.decode("utf-8")) if body else None
        if isinstance(parsed, dict) and isinstance(parsed.get("error"), dict):
            detail = parsed["error"]
    except (ValueError, UnicodeDecodeError):
        pass
    if not detail:
        text = body[:500].decode("utf-8", "replace").strip()
        detail = {"message": text or f"HTTP {status}"}
    return error_from_detail(detail, status=status, retry_after=retry_after)
