"""The Milvus errors agentfleet distinguishes, and the translation of pymilvus's into them."""

from __future__ import annotations

import contextlib
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from typing import Any

# --- Errors ------------------------------------------------------------------------------------


class MilvusError(RuntimeError):
    """Base of every error this module raises.

    ``public``: the text a VectorIndex's status and Events may carry. It is our own words only: what
    the remote end answered (which may not be Milvus at all) goes to the operator's log, never to an
    author who could use status to map services behind the operator."""

    retryable = False
    default_public = "Milvus refused a request (the operator's log has its answer)"

    def __init__(self, message: str, public: str | None = None) -> None:
        super().__init__(message)
        self.public = public if public is not None else self.default_public


class MilvusUnavailable(MilvusError):
    """Milvus cannot be reached or did not answer in time. Retry with backoff."""

    retryable = True
    default_public = "no Milvus answered (refused, timed out or not Milvus; the operator's log has the cause)"


class MilvusRequestError(MilvusError):
    """Milvus answered and refused the request (bad parameters, unsupported call)."""

    def __init__(self, message: str, code: int | None = None, public: str | None = None) -> None:
        super().__init__(message, public)
        self.code = code


class UnsupportedByServer(MilvusRequestError):
    """The spec asks for what this Milvus version cannot do (our own words: safe for status)."""

    def __init__(self, message: str) -> None:
        super().__init__(message, public=message)


@dataclass(frozen=True)
class Conflict:
    field: str  # spec field path, e.g. spec.dimension
    existing: Any
    desired: Any


class ImmutableFieldConflict(MilvusError):
    """The collection exists with values the spec may not change."""

    def __init__(self, collection: str, conflicts: Sequence[Conflict]) -> None:
        self.collection = collection
        self.conflicts = tuple(conflicts)
        parts = "; ".join(
            f"{c.field} is {c.existing} in the existing collection, the spec asks for {c.desired}"
            for c in self.conflicts
        )
        msg = (
            f"collection {collection!r} cannot be changed in place: {parts}. These are fixed when Milvus creates a "
            "collection: "
            "restore the old values, or use a new collection name (a new VectorIndex) and re-ingest"
        )
        super().__init__(msg, public=msg)


_UNAVAILABLE_HINTS = (
    "fail connecting",
    "unavailable",
    "deadline",
    "timeout",
    "timed out",
    "connection refused",
    "connect failed",
    "server is not ready",
)


def translate(e: BaseException) -> MilvusError:
    """Any pymilvus/grpc/socket error as one of ours."""
    if isinstance(e, MilvusError):
        return e
    try:
        import grpc

        if isinstance(e, grpc.RpcError):
            code = e.code() if callable(getattr(e, "code", None)) else None
            details = e.details() if callable(getattr(e, "details", None)) else str(e)
            if code in (
                grpc.StatusCode.UNAVAILABLE,
                grpc.StatusCode.DEADLINE_EXCEEDED,
                grpc.StatusCode.CANCELLED,
                grpc.StatusCode.RESOURCE_EXHAUSTED,
            ):
                return MilvusUnavailable(f"Milvus unavailable: {code.name}: {details}")
            return MilvusRequestError(f"Milvus refused the call: {getattr(code, 'name', code)}: {details}")
    except ImportError:  # pragma: no cover - grpc comes with pymilvus
        pass
    try:
        from pymilvus.exceptions import MilvusException, MilvusUnavailableException

        if isinstance(e, MilvusUnavailableException):
            return MilvusUnavailable(f"Milvus unavailable: {e.message}")
        if isinstance(e, MilvusException):
            msg = e.message or str(e)
            if e.code == 2 or any(h in msg.lower() for h in _UNAVAILABLE_HINTS):
                return MilvusUnavailable(f"Milvus unavailable: {msg}")
            return MilvusRequestError(f"Milvus refused the request: {msg}", e.code)
    except ImportError:  # pragma: no cover
        pass
    if isinstance(e, (ConnectionError, TimeoutError, OSError)):
        return MilvusUnavailable(f"Milvus unavailable: {e}")
    return MilvusRequestError(f"unexpected error talking to Milvus: {type(e).__name__}: {e}")


@contextlib.contextmanager
def translated(*, before_milvus: bool = False) -> Iterator[None]:
    """Errors inside the block as ours. ``before_milvus``: the far end has not yet shown it is Milvus
    (connecting): a refusal there means "not Milvus" and is MilvusUnavailable, like a closed port."""
    try:
        yield
    except MilvusError as e:
        if before_milvus and type(e) is MilvusRequestError and e.public == MilvusError.default_public:
            raise MilvusUnavailable(f"not Milvus, or refused the connection: {e}") from e
        raise
    except Exception as e:  # noqa: BLE001 - everything from the client is translated
        err = translate(e)
        if before_milvus and type(err) is MilvusRequestError:
            raise MilvusUnavailable(f"not Milvus, or refused the connection: {err}") from e
        raise err from e
