"""Typed domain errors raised by the service layer; the API maps each to a problem type once."""

from __future__ import annotations


class WorkstreamError(Exception):
    """Base of every domain error. `kind` is the stable problem-type slug."""

    kind = "error"

    def __init__(self, detail: str):
        super().__init__(detail)
        self.detail = detail


class NotFound(WorkstreamError):
    """The object does not exist, or the actor may not see it (the two are not told apart)."""

    kind = "not-found"


class NotAllowed(WorkstreamError):
    """The actor may see the item but may not do this to it."""

    kind = "not-allowed"


class InvalidTransition(WorkstreamError):
    """The lifecycle does not allow this action in the item's current state."""

    kind = "invalid-transition"

    def __init__(self, detail: str, *, action: str, state: str, allowed_actions: list[str]):
        super().__init__(detail)
        self.action = action
        self.state = state
        self.allowed_actions = allowed_actions


class AlreadyClaimed(InvalidTransition):
    """Somebody else took the item first."""

    kind = "already-claimed"


class StaleVersion(WorkstreamError):
    """The caller's expected version is not the item's current one."""

    kind = "stale-version"

    def __init__(self, detail: str, *, expected: int, current: int):
        super().__init__(detail)
        self.expected = expected
        self.current = current


class ValidationFailed(WorkstreamError):
    """The input is malformed; `errors` lists `{"field", "message"}` for each problem."""

    kind = "validation-error"

    def __init__(self, errors: list[dict[str, str]], detail: str | None = None):
        self.errors = errors
        first = errors[0] if errors else {"field": "", "message": "invalid input"}
        super().__init__(detail or f"{first['field'] or 'input'}: {first['message']}")


class Conflict(WorkstreamError):
    """The request conflicts with what exists: a definition of that name, an item already where it
    should move (409)."""

    kind = "conflict"


class ConstraintViolated(WorkstreamError):
    """A distribution constraint (capacity, separation of duties, exclusion, eligibility) forbids this."""

    kind = "constraint-violated"

    def __init__(self, detail: str, *, constraint: str):
        super().__init__(detail)
        self.constraint = constraint


class FeatureDisabled(NotAllowed):
    """A configuration toggle switches this off; `toggle` is its dotted key in the configuration file."""

    kind = "feature-disabled"

    def __init__(self, detail: str, *, toggle: str):
        super().__init__(f"{detail} ({toggle} is off in the configuration)")
        self.toggle = toggle


class EncryptionUnavailable(WorkstreamError):
    """A queue's encrypted context keys cannot be written or read here: no key ring is configured,
    the ring lacks the key a value names, or that key does not authenticate it (503; nothing changes)."""

    kind = "encryption-unavailable"
