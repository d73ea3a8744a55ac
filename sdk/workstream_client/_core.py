"""What the sync and async clients share: configuration, request building, URL handling,
auth state, and turning responses into results or exceptions. No I/O happens here."""

from __future__ import annotations

import dataclasses
import platform
import uuid
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from datetime import date, datetime
from typing import Any
from urllib.parse import quote, urljoin, urlsplit, urlunsplit

import httpx

from ._version import __version__
from .errors import ConnectionFailedError, WorkstreamError, error_from_problem
from .retry import RETRY_EXCEPTIONS, RetryPolicy, parse_retry_after

API_PREFIX = "/api/v1"
TOKEN_PATH = "/auth/token"  # noqa: S105 - a URL path, not a secret
REFRESH_PATH = "/auth/token/refresh"
DEFAULT_TIMEOUT = 10.0
SDK_USER_AGENT = f"workstream-client/{__version__} (python {platform.python_version()}; httpx {httpx.__version__})"

_UNSET: Any = object()


@dataclass
class Call:
    """One logical API call (possibly several HTTP attempts)."""

    method: str
    path: str = ""
    params: list[tuple[str, str]] | None = None
    json: Any = _UNSET
    if_match: int | str | None = None
    idempotency_key: str | None = None
    request_id: str | None = None
    parse: Callable[[Any], Any] | None = None
    api: bool = True  # the path is under /api/v1
    auth: bool = True  # send credentials (and re-authenticate on 401)
    url: str | None = None  # an absolute URL (a page's `next`) instead of path
    gone_ok_on_retry: bool = False  # DELETE: a 404 after a retried attempt means the first one worked
    ok_statuses: frozenset[int] = frozenset()  # error statuses returned as results (health: 503)
    retry: bool = True
    headers: dict[str, str] = field(default_factory=dict)


def segment(value: Any) -> str:
    """A URL path segment (ids, queue names, usernames)."""
    return quote(str(value), safe="")


def if_match_value(version: int | str) -> str:
    if isinstance(version, bool):
        raise TypeError("if_match must be the item's integer version")
    if isinstance(version, int):
        return f'"{version}"'
    text = str(version).strip()
    if text.startswith(('"', "W/")):
        return text
    return f'"{text}"'


def encode_params(filters: Mapping[str, Any]) -> list[tuple[str, str]]:
    """Query parameters from keyword filters: lists repeat the key, booleans become
    ``true``/``false``, datetimes ISO 8601, ``None`` is left out."""
    out: list[tuple[str, str]] = []

    def one(v: Any) -> str:
        if isinstance(v, bool):
            return "true" if v else "false"
        if isinstance(v, datetime | date):
            return v.isoformat()
        return str(v)

    for key, value in filters.items():
        if value is None:
            continue
        if isinstance(value, list | tuple | set | frozenset):
            out.extend((key, one(v)) for v in value)
        else:
            out.append((key, one(value)))
    return out


def jsonable(value: Any) -> Any:
    """A request body with datetimes/dates as ISO 8601 strings (and tuples/sets as lists)."""
    if isinstance(value, datetime | date):
        return value.isoformat()
    if isinstance(value, Mapping):
        return {str(k): jsonable(v) for k, v in value.items()}
    if isinstance(value, list | tuple | set | frozenset):
        return [jsonable(v) for v in value]
    return value


class BaseClient:
    """Configuration and the I/O-free half of a client. See :class:`WorkstreamClient`."""

    def __init__(
        self,
        base_url: str,
        *,
        api_key: str | None = None,
        token: str | None = None,
        username: str | None = None,
        password: str | None = None,
        timeout: float | httpx.Timeout | None = DEFAULT_TIMEOUT,
        max_retries: int | None = None,
        retry: RetryPolicy | None = None,
        user_agent: str | None = None,
        headers: Mapping[str, str] | None = None,
        request_id_factory: Callable[[], str | None] | None = None,
    ) -> None:
        given = [name for name, v in (("api_key", api_key), ("token", token)) if v] + (
            ["username/password"] if (username or password) else []
        )
        if len(given) > 1:
            raise ValueError(f"give one kind of credentials, not {' and '.join(given)}")
        if (username is None) != (password is None):
            raise ValueError("username= and password= go together")
        base = base_url.rstrip("/")
        if base.endswith(API_PREFIX):  # accept the API root as well as the server root
            base = base[: -len(API_PREFIX)]
        if urlsplit(base).scheme not in ("http", "https"):
            raise ValueError(f"base_url needs a scheme (http:// or https://): {base_url!r}")
        self.base_url = base
        self._api_key = api_key
        self._username = username
        self._password = password
        self._access: str | None = token
        self._refresh: str | None = None
        self.timeout = timeout
        if retry is None:
            retry = RetryPolicy(max_retries=3 if max_retries is None else max_retries)
        elif max_retries is not None:
            retry = dataclasses.replace(retry, max_retries=max_retries)
        self.retry = retry
        self.user_agent = f"{user_agent} {SDK_USER_AGENT}" if user_agent else SDK_USER_AGENT
        self._extra_headers = dict(headers or {})
        self._request_id_factory = request_id_factory

    # -- auth -------------------------------------------------------------------------
    @property
    def uses_password(self) -> bool:
        return self._username is not None

    def _auth_header(self) -> str | None:
        if self._api_key:
            return f"Api-Key {self._api_key}"
        if self._access:
            return f"Bearer {self._access}"
        return None

    def _needs_login(self, call: Call) -> bool:
        return call.auth and self.uses_password and not self._access

    def _login_call(self) -> Call:
        return Call("POST", TOKEN_PATH, json={"username": self._username, "password": self._password}, auth=False)

    def _refresh_call(self) -> Call:
        return Call("POST", REFRESH_PATH, json={"refresh": self._refresh}, auth=False)

    def _store_tokens(self, data: Any) -> None:
        if not isinstance(data, dict) or not data.get("access"):
            raise WorkstreamError("the token endpoint answered without an access token")
        self._access = data["access"]
        if data.get("refresh"):
            self._refresh = data["refresh"]

    # -- requests ---------------------------------------------------------------------
    def _url(self, call: Call) -> str:
        if call.url:
            return self._same_origin(call.url)
        path = call.path if call.path.startswith("/") else "/" + call.path
        return self.base_url + (API_PREFIX + path if call.api else path)

    def _same_origin(self, url: str) -> str:
        """A ``next``/``previous`` link, kept on this client's server: a relative link is
        resolved against it, an absolute one naming another origin (a proxy's internal host)
        keeps its path and query but goes to ours — credentials never go elsewhere."""
        absolute = urljoin(self.base_url + "/", url)
        ours, theirs = urlsplit(self.base_url), urlsplit(absolute)
        if (theirs.scheme, theirs.netloc) == (ours.scheme, ours.netloc):
            return absolute
        return urlunsplit((ours.scheme, ours.netloc, theirs.path, theirs.query, ""))

    def _idempotency_key(self, call: Call) -> str | None:
        if call.method.upper() != "POST" or not call.auth:
            return None
        return call.idempotency_key or str(uuid.uuid4())

    def _headers(self, call: Call, idempotency_key: str | None) -> dict[str, str]:
        h = {
            "Accept": "application/json, application/problem+json",
            "User-Agent": self.user_agent,
        }
        h.update(self._extra_headers)
        if call.auth:
            auth = self._auth_header()
            if auth:
                h["Authorization"] = auth
        if idempotency_key:
            h["Idempotency-Key"] = idempotency_key
        if call.if_match is not None:
            h["If-Match"] = if_match_value(call.if_match)
        request_id = call.request_id
        if request_id is None and self._request_id_factory is not None:
            request_id = self._request_id_factory()
        if request_id:
            h["X-Request-ID"] = request_id
        h.update(call.headers)
        return h

    def _request_kwargs(self, call: Call, idempotency_key: str | None) -> dict[str, Any]:
        kw: dict[str, Any] = {
            "method": call.method,
            "url": self._url(call),
            "headers": self._headers(call, idempotency_key),
        }
        if call.params:
            kw["params"] = call.params
        if call.json is not _UNSET:
            kw["json"] = jsonable(call.json)
        return kw

    # -- retry decisions ----------------------------------------------------------------
    def _should_reauth(self, call: Call, response: httpx.Response, reauthed: bool) -> bool:
        return response.status_code == 401 and call.auth and self.uses_password and not reauthed

    def _retry_delay(self, call: Call, response: httpx.Response, attempt: int) -> float | None:
        """Seconds to wait before another attempt after ``response``, or None not to retry."""
        if (
            not call.retry
            or attempt >= self.retry.max_retries
            or not self.retry.should_retry_status(response.status_code)
        ):
            return None
        retry_after = parse_retry_after(response.headers.get("Retry-After"))
        return self.retry.delay_for_response(attempt, retry_after)

    def _transport_retry_delay(self, call: Call, exc: Exception, attempt: int) -> float | None:
        if not call.retry or attempt >= self.retry.max_retries or not isinstance(exc, RETRY_EXCEPTIONS):
            return None
        return self.retry.backoff(attempt)

    @staticmethod
    def _connection_error(exc: Exception, call: Call, attempts: int) -> ConnectionFailedError:
        return ConnectionFailedError(
            f"{call.method} {call.url or call.path}: {type(exc).__name__}: {exc} (after {attempts} attempt(s))"
        )

    # -- results ------------------------------------------------------------------------
    def _result(self, call: Call, response: httpx.Response, retried: bool) -> Any:
        status = response.status_code
        if 200 <= status < 300 or status in call.ok_statuses:
            if status == 204 or not response.content:
                return None
            data = response.json()
            return call.parse(data) if call.parse else data
        if status == 404 and retried and call.gone_ok_on_retry:
            return None
        raise self.error_for(response)

    @staticmethod
    def error_for(response: httpx.Response) -> WorkstreamError:
        """The exception for an error response (problem details, or whatever else came)."""
        problem: dict[str, Any] | None = None
        ctype = response.headers.get("Content-Type", "").split(";")[0].strip().lower()
        if ctype in ("application/problem+json", "application/json") or ctype.endswith("+json"):
            try:
                body = response.json()
            except ValueError:
                body = None
            if isinstance(body, dict):
                problem = body
                if "title" not in problem and "type" not in problem and isinstance(problem.get("detail"), str):
                    problem.setdefault("title", response.reason_phrase)
        if problem is None:
            text = response.text.strip() if response.content else ""
            problem = {"title": response.reason_phrase, "status": response.status_code}
            if text:
                problem["detail"] = text[:500]
        retry_after = parse_retry_after(response.headers.get("Retry-After"))
        return error_from_problem(
            problem,
            response.status_code,
            request_id=response.headers.get("X-Request-ID"),
            retry_after=retry_after,
        )
