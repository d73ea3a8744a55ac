"""The `complete` form, rendered from the item's `result` JSON Schema (its task type's, else
its lifecycle's: WorkItem.result_schema), laid out by its task type's `form` when it has one.

A small renderer: each top-level property of an object schema becomes one input (an `enum` a
select, a string a text box, an integer or number a number box, a boolean a checkbox, anything
else a JSON text area). What comes back is parsed by the same types; the schema itself is
checked by the service (`work_item_complete`), whose errors are shown next to their inputs.
Without a schema (or with one that is not an object of properties) the form is one JSON text
area for the whole result.

A task type's `form` (`{"fields": [{"name", "label", "help"}]}`) puts the properties it lists
first, in its order, with its label and help text in place of the schema's `title` and
`description`; the properties it does not list follow in the schema's order. It changes the
layout only: what is required and what is valid stay the schema's.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass, field
from typing import Any

PREFIX = "result__"
WHOLE = "result"  # the name of the one-text-area form
_REQUIRED = re.compile(r"^'([^']+)' is a required property$")


@dataclass
class Input:
    """One input of the form, ready for the template."""

    name: str  # the property (WHOLE for the one-text-area form)
    label: str
    kind: str  # text, integer, number, checkbox, select, json
    required: bool = False
    help: str = ""
    value: str = ""
    checked: bool = False
    choices: list[str] = field(default_factory=list)
    minimum: Any = None
    maximum: Any = None
    errors: list[str] = field(default_factory=list)

    @property
    def html_name(self) -> str:
        return WHOLE if self.name == WHOLE else PREFIX + self.name

    @property
    def testid(self) -> str:
        return f"result-field-{self.name}"


def _properties(schema: dict | None) -> dict | None:
    if isinstance(schema, dict) and isinstance(schema.get("properties"), dict) and schema["properties"]:
        return schema["properties"]
    return None


def _kind(prop: dict) -> str:
    if "enum" in prop and isinstance(prop["enum"], list):
        return "select"
    kind = prop.get("type")
    if kind in ("string", "integer", "number"):
        return "text" if kind == "string" else kind
    if kind == "boolean":
        return "checkbox"
    return "json"


def _laid_out(props: dict, form: dict | None) -> list[tuple[str, dict, dict]]:
    """(name, property, its form entry) in the form's order, then the rest in the schema's."""
    entries = {}
    for entry in (form or {}).get("fields") or []:
        if isinstance(entry, dict) and entry.get("name") in props:
            entries.setdefault(entry["name"], entry)
    names = [*entries, *(n for n in props if n not in entries)]
    return [(n, props[n] if isinstance(props[n], dict) else {}, entries.get(n, {})) for n in names]


def inputs(
    schema: dict | None, posted=None, errors: list[dict] | None = None, form: dict | None = None
) -> tuple[list[Input], list[str]]:
    """The form's inputs for `schema` laid out by `form` (a task type's), filled from `posted`
    (the submitted QueryDict, if any), with `errors` (the service's or the parser's
    `{"field", "message"}`) placed on their inputs; returns (inputs, the errors that belong to
    no input)."""
    props = _properties(schema)
    if props is None:
        whole = Input(name=WHOLE, label="Result (JSON object)", kind="json", value="{}")
        if posted is not None:
            whole.value = posted.get(WHOLE, "")
        fields = [whole]
    else:
        required = set(schema.get("required") or [])
        fields = []
        for name, prop, entry in _laid_out(props, form):
            f = Input(
                name=name,
                label=str(entry.get("label") or prop.get("title") or name.replace("_", " ").capitalize()),
                kind=_kind(prop),
                required=name in required,
                help=str(entry.get("help") or prop.get("description") or ""),
                choices=[_as_text(v) for v in prop.get("enum") or []],
                minimum=prop.get("minimum"),
                maximum=prop.get("maximum"),
            )
            if posted is not None:
                f.value = posted.get(PREFIX + name, "")
                f.checked = bool(posted.get(PREFIX + name))
            elif "default" in prop:
                f.value = _as_text(prop["default"])
                f.checked = prop["default"] is True
            fields.append(f)
    by_name = {f.name: f for f in fields}
    general = []
    for err in errors or []:
        target = _input_of(err, by_name)
        if target is None:
            general.append(f"{err.get('field') or 'result'}: {err['message']}")
        else:
            target.errors.append(err["message"])
    return fields, general


def _input_of(err: dict, by_name: dict[str, Input]) -> Input | None:
    name = str(err.get("field") or "")
    if name == WHOLE:
        missing = _REQUIRED.match(err.get("message", ""))
        if missing and missing.group(1) in by_name:
            return by_name[missing.group(1)]
        return by_name.get(WHOLE)
    if name.startswith(WHOLE + "."):
        top = name[len(WHOLE) + 1 :].split(".")[0].split("[")[0]
        return by_name.get(top) or by_name.get(WHOLE)
    return None


def _as_text(value: Any) -> str:
    if isinstance(value, str):
        return value
    return json.dumps(value)


def parse(schema: dict | None, posted) -> tuple[dict | None, list[dict]]:
    """The result object from the submitted form, and the inputs that could not be read
    (`{"field": "result.<name>", "message"}`). Empty inputs are left out, so a missing
    required property is the schema's error."""
    props = _properties(schema)
    if props is None:
        raw = (posted.get(WHOLE) or "").strip()
        if not raw:
            return {}, []
        try:
            value = json.loads(raw)
        except ValueError:
            return None, [{"field": WHOLE, "message": "is not valid JSON"}]
        return value, []
    result: dict[str, Any] = {}
    errors = []
    for name, prop in props.items():
        prop = prop if isinstance(prop, dict) else {}
        kind = _kind(prop)
        raw = posted.get(PREFIX + name, "")
        if kind == "checkbox":
            result[name] = bool(raw)
            continue
        if raw.strip() == "":
            continue
        try:
            result[name] = _value(kind, raw, prop)
        except ValueError as exc:
            errors.append({"field": f"{WHOLE}.{name}", "message": str(exc)})
    return result, errors


def _value(kind: str, raw: str, prop: dict) -> Any:
    if kind == "select":
        for option in prop["enum"]:
            if _as_text(option) == raw:
                return option
        raise ValueError("is not one of the choices")
    if kind == "integer":
        try:
            return int(raw.strip())
        except ValueError:
            raise ValueError("must be a whole number") from None
    if kind == "number":
        try:
            number = float(raw.strip())
        except ValueError:
            raise ValueError("must be a number") from None
        return int(number) if number.is_integer() and "." not in raw else number
    if kind == "json":
        try:
            return json.loads(raw)
        except ValueError:
            raise ValueError("is not valid JSON") from None
    return raw
