"""Renderers of the API (REST_FRAMEWORK["DEFAULT_RENDERER_CLASSES"]).

A browser (`Accept: text/html`) gets DRF's browsable page for a successful answer;
an error is always the problem detail as JSON, labelled `application/problem+json`,
whatever `Accept` asked for (docs/api.md, "Errors: problem details")."""

from __future__ import annotations

from rest_framework import renderers

# api.problems.CONTENT_TYPE; api.problems imports DRF's views, which load this module.
PROBLEM_CONTENT_TYPE = "application/problem+json"


class BrowsableAPIRenderer(renderers.BrowsableAPIRenderer):
    def render(self, data, accepted_media_type=None, renderer_context=None):
        response = (renderer_context or {}).get("response")
        if response is not None and response.status_code >= 400:
            if response.content_type is None:  # every problem sets its own; this is the fallback
                response["Content-Type"] = PROBLEM_CONTENT_TYPE
            return renderers.JSONRenderer().render(data, "application/json", renderer_context)
        return super().render(data, accepted_media_type, renderer_context)
