"""GET /features: the configuration in force (the file holds no secrets)."""

from __future__ import annotations

from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import OpenApiResponse, extend_schema
from rest_framework.response import Response

from api.schema import PROBLEM_RESPONSES
from api.views import WorkstreamAPIView
from config import wsconfig


class FeaturesView(WorkstreamAPIView):
    @extend_schema(
        operation_id="features",
        responses={
            200: OpenApiResponse(
                response=OpenApiTypes.OBJECT,
                description="The configuration in force: one key per section of the configuration file "
                "(features, assignment, performance, eventBus, rateLimits, idempotency, roles, relay, webhooks, …)",
            ),
            **PROBLEM_RESPONSES(401, 429),
        },
    )
    def get(self, request):
        return Response(wsconfig.get().as_dict())
