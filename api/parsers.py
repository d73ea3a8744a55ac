"""The JSON body parser of every API view (REST_FRAMEWORK["DEFAULT_PARSER_CLASSES"]).

DRF's JSONParser, plus what a body must be before any view or service sees it:
nested at most MAX_DEPTH levels (deeper JSON used to end in a RecursionError, a 500),
numbers finite (`1e400` is not infinity), and no text PostgreSQL cannot store: lone
UTF-16 surrogates (`"\\ud800"`, valid JSON but no UTF-8) or NUL characters, in any
string or key. Each is a 400 problem naming the field.
"""

from __future__ import annotations

import codecs
import math

from rest_framework import parsers
from rest_framework.exceptions import ParseError
from rest_framework.utils import json

from workitems import schemas
from workitems.errors import ValidationFailed

MAX_DEPTH = schemas.MAX_DEPTH


def _finite(text: str) -> float:
    value = float(text)
    if not math.isfinite(value):
        raise ValueError(f"number out of range: {text[:40]}")
    return value


def _deep() -> ValidationFailed:
    return ValidationFailed(
        [{"field": "body", "message": f"nested deeper than {MAX_DEPTH} levels"}],
        detail=f"body: JSON nested deeper than {MAX_DEPTH} levels",
    )


class JSONParser(parsers.JSONParser):
    def parse(self, stream, media_type=None, parser_context=None):
        encoding = parsers.get_encoding(parser_context or {})
        try:
            text = codecs.getreader(encoding)(stream).read()
            data = json.loads(text, parse_float=_finite)  # NaN, Infinity: DRF's strict_constant
        except ValueError as exc:  # UnicodeDecodeError and JSONDecodeError too
            raise ParseError(f"JSON parse error - {exc}") from None
        except RecursionError:
            raise _deep() from None
        if schemas.too_deep(data):
            raise _deep()
        errors = schemas.nul_errors(data)
        if errors:
            raise ValidationFailed(errors)
        return data
