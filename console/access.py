"""Who may use the console, and how its views run: logged in through the session, holding a
person's platform role (worker, supervisor or admin; a service client is a machine and uses
the API), each command under the `console` audit channel."""

from __future__ import annotations

import contextlib
import functools
from collections.abc import Iterator

from django import forms
from django.conf import settings
from django.contrib.auth.forms import AuthenticationForm
from django.contrib.auth.views import redirect_to_login
from django.http import Http404, HttpResponse
from django.shortcuts import resolve_url

from config import context
from directory.roles import ADMIN, SUPERVISOR, WORKER, roles_of
from workitems import policy
from workitems.errors import EncryptionUnavailable, NotFound

CONSOLE_ROLES = frozenset({WORKER, SUPERVISOR, ADMIN})


def may_use_console(user) -> bool:
    """Workers, supervisors and admins (staff or not) log in to the console."""
    return bool(roles_of(user) & CONSOLE_ROLES)


def supervises(user) -> bool:
    """Supervisors and admins get the dashboard and the supervisors' actions (policy.is_supervisor)."""
    return policy.is_supervisor(user)


class ConsoleLoginForm(AuthenticationForm):
    """Django's login form (the configured backends: axes, LDAP when set, local passwords), which
    also refuses accounts that hold no console role."""

    def confirm_login_allowed(self, user) -> None:
        super().confirm_login_allowed(user)
        if not may_use_console(user):
            raise forms.ValidationError(
                "This account has no console role (worker, supervisor or admin).", code="no_console_role"
            )


def console_view(view=None, *, supervisors_only: bool = False):
    """Decorate a console view: the login page for anonymous callers, 404 for accounts without a
    console role (or, with `supervisors_only`, without a supervisor's), and a domain NotFound is
    Django's 404 (what the API answers for what the caller may not see)."""

    def decorate(func):
        @functools.wraps(func)
        def wrapper(request, *args, **kwargs):
            if not request.user.is_authenticated:
                if request.headers.get("HX-Request"):
                    # a poll after the session ended: the whole page goes to the login, not the fragment
                    response = HttpResponse(status=204)
                    response["HX-Redirect"] = resolve_url(settings.LOGIN_URL)
                    return response
                return redirect_to_login(request.get_full_path())
            if not may_use_console(request.user) or (supervisors_only and not supervises(request.user)):
                raise Http404("not found")
            try:
                return func(request, *args, **kwargs)
            except NotFound as exc:
                raise Http404(exc.detail) from None
            except EncryptionUnavailable as exc:  # the key ring cannot open what this reader may see
                return HttpResponse(exc.detail, status=503, content_type="text/plain; charset=utf-8")

        return wrapper

    return decorate(view) if view is not None else decorate


@contextlib.contextmanager
def as_console() -> Iterator[None]:
    """Run commands under the `console` channel (their audit records and events say so), keeping
    the request's id."""
    with context.acting(channel="console", request_id=context.current_request_id() or None):
        yield
