"""The OpenAPI document lists each lifecycle action as its own operation.

One route serves every action (`POST /workitems/{item_id}/{action}`), but each action takes its
own body: `delegate` requires `user`, `complete` takes `result`, `claim` takes nothing. A single
documented operation cannot say which body goes with which action, so this drf-spectacular
post-processing hook replaces it with one operation per action
(`POST /workitems/{item_id}/claim`, …), each with exactly the body that action takes (a closed
empty object for those that take none). The paths are the ones the route serves.
"""

from __future__ import annotations

import copy

from workitems.api.views import ACTION_BODIES, API_ACTIONS

GENERIC = "/api/v1/workitems/{item_id}/{action}"
NO_BODY = {"type": "object", "properties": {}, "additionalProperties": False}


def per_action_operations(result, generator, request, public):
    paths = result.get("paths", {})
    generic = paths.get(GENERIC, {}).get("post")
    if generic is None:
        return result
    schemas = result.get("components", {}).get("schemas", {})
    del paths[GENERIC]
    for route in API_ACTIONS:
        operation = copy.deepcopy(generic)
        operation["operationId"] = f"workitems_{route.replace('-', '_')}"
        operation["summary"] = f"{route}: fire the `{route}` action"
        operation["parameters"] = [p for p in operation.get("parameters", []) if p.get("name") != "action"]
        body = ACTION_BODIES.get(route)
        if body is None:
            operation["requestBody"] = {"content": {"application/json": {"schema": dict(NO_BODY)}}, "required": False}
        else:
            name = f"{body.__name__}Request"
            required = bool(schemas.get(name, {}).get("required"))
            operation["requestBody"] = {
                "content": {"application/json": {"schema": {"$ref": f"#/components/schemas/{name}"}}},
                "required": required,
            }
        paths[GENERIC.replace("{action}", route)] = {"post": operation}
    schemas.pop("ActionBody", None)
    schemas.pop("ActionBodyRequest", None)
    return result
