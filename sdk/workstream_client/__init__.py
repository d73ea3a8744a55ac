"""Python client for the Workstream work-item service (REST API v1).

from workstream_client import WorkstreamClient

with WorkstreamClient("https://workstream.example.com", api_key="...") as ws:
    item = ws.create_work_item(workflow_id="wf-1", task_name="review", queue="claims")
"""

from ._version import __version__
from .aio import AsyncWorkstreamClient
from .client import WorkstreamClient
from .errors import (
    AlreadyClaimedError,
    BadRequestError,
    ClientError,
    ConcurrentModificationError,
    ConflictError,
    ConnectionFailedError,
    ConstraintViolatedError,
    IdempotencyInFlightError,
    IdempotencyKeyReusedError,
    InvalidTransitionError,
    MalformedRequestError,
    MethodNotAllowedError,
    NotAcceptableError,
    NotAllowedError,
    NotFoundError,
    PayloadTooLargeError,
    PreconditionFailedError,
    RateLimitedError,
    ServerError,
    StaleVersionError,
    UnauthorizedError,
    UnprocessableError,
    UnsupportedMediaTypeError,
    ValidationError,
    WorkstreamError,
    error_from_problem,
)
from .models import Page, Queue, WorkItem
from .retry import RetryPolicy

__all__ = [
    "AlreadyClaimedError",
    "AsyncWorkstreamClient",
    "BadRequestError",
    "ClientError",
    "ConcurrentModificationError",
    "ConflictError",
    "ConnectionFailedError",
    "ConstraintViolatedError",
    "IdempotencyInFlightError",
    "IdempotencyKeyReusedError",
    "InvalidTransitionError",
    "MalformedRequestError",
    "MethodNotAllowedError",
    "NotAcceptableError",
    "NotAllowedError",
    "NotFoundError",
    "Page",
    "PayloadTooLargeError",
    "PreconditionFailedError",
    "Queue",
    "RateLimitedError",
    "RetryPolicy",
    "ServerError",
    "StaleVersionError",
    "UnauthorizedError",
    "UnprocessableError",
    "UnsupportedMediaTypeError",
    "ValidationError",
    "WorkItem",
    "WorkstreamClient",
    "WorkstreamError",
    "__version__",
    "error_from_problem",
]
