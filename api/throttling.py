"""Per-client request rates on the shared (Redis) cache: default 100/s, per role overrides."""

from __future__ import annotations

from rest_framework.throttling import SimpleRateThrottle

from config import wsconfig
from directory.roles import roles_of


class ClientRateThrottle(SimpleRateThrottle):
    scope = "client"

    def get_rate(self):
        return None  # decided per request in allow_request

    def allow_request(self, request, view):
        limits = wsconfig.get().rateLimits
        rate = limits.default
        for role in ("admin", "supervisor", "service", "worker"):
            if role in roles_of(request.user) and role in limits.perRole.as_dict():
                rate = limits.perRole[role]
                break
        self.rate = rate
        self.num_requests, self.duration = self.parse_rate(rate)
        return super().allow_request(request, view)

    def get_cache_key(self, request, view):
        if request.user and request.user.is_authenticated:
            ident = f"user:{request.user.pk}"
        else:
            ident = f"ip:{self.get_ident(request)}"
        return f"throttle:{ident}"
