"""API keys of service clients, and the stored responses behind Idempotency-Key."""

from __future__ import annotations

from django.conf import settings
from django.db import models
from rest_framework_api_key.models import AbstractAPIKey


class ServiceApiKey(AbstractAPIKey):
    """A hashed API key (`Authorization: Api-Key <key>`) that acts as `user`.

    The key itself is shown once, at creation; only its hash is stored. The
    user carries the roles (usually `service`) through its groups.
    """

    user = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="api_keys")

    class Meta(AbstractAPIKey.Meta):
        verbose_name = "service API key"
        verbose_name_plural = "service API keys"


class IdempotencyRecord(models.Model):
    """The first response to a POST with an Idempotency-Key, replayed for 24 h to the same client.

    Written in the same transaction as the change the request made, so a
    retry sees either nothing (the first attempt rolled back) or the
    committed change and its response, never one without the other.
    """

    client = models.CharField(max_length=100)  # "user:<id>"
    key = models.CharField(max_length=255)
    fingerprint = models.CharField(max_length=64)
    status_code = models.PositiveSmallIntegerField()
    content_type = models.CharField(max_length=100)
    headers = models.JSONField(default=dict)
    body = models.BinaryField()
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        constraints = [models.UniqueConstraint(fields=["client", "key"], name="idempotency_client_key_uniq")]
        indexes = [models.Index(fields=["created_at"], name="idempotency_created_idx")]

    def __str__(self) -> str:
        return f"{self.client} {self.key}"
