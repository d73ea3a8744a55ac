"""GET /features: the configuration in force (the file holds no secrets)."""

from __future__ import annotations

from drf_spectacular.utils import extend_schema, inline_serializer
from rest_framework import serializers
from rest_framework.response import Response

from api.schema import PROBLEM_RESPONSES
from api.views import WorkstreamAPIView
from config import wsconfig


class FeaturesView(WorkstreamAPIView):
    @extend_schema(
        operation_id="features",
        responses={
            200: inline_serializer(
                "Features",
                fields={
                    "features": serializers.DictField(),
                    "assignment": serializers.DictField(),
                    "performance": serializers.DictField(),
                    "eventBus": serializers.DictField(),
                    "rateLimits": serializers.DictField(),
                    "idempotency": serializers.DictField(),
                    "roles": serializers.DictField(),
                },
            ),
            **PROBLEM_RESPONSES(401, 429),
        },
    )
    def get(self, request):
        return Response(wsconfig.get().as_dict())
