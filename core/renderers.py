"""The API's JSON renderer: orjson, with JSON already rendered passed through.

DRF's renderer runs ``json.dumps`` with a Python encoder; a page of 50
executions is ~100 KB of JSON, and orjson writes it several times faster.
Values orjson has no type for (datetimes, decimals, lazy strings) go
through DRF's own encoder, so the answers read as before. ``Rendered``
wraps JSON text that is already an answer (a finished execution's, stored
once: ``pipelines.answers``) so that it is written as it is, not parsed and
rendered again.

Kept apart from ``core.api`` for the reason ``core.parsers`` is.
"""

from __future__ import annotations

import json
from typing import Any

import orjson
from rest_framework import renderers
from rest_framework.utils.encoders import JSONEncoder

_OPTIONS = orjson.OPT_PASSTHROUGH_DATETIME | orjson.OPT_NON_STR_KEYS


class Rendered:
    """A JSON value, already rendered (UTF-8), to be written into an answer as it is."""

    __slots__ = ("json",)

    def __init__(self, json: bytes) -> None:
        self.json = json


class _Encoder(JSONEncoder):
    """DRF's encoder, reading ``Rendered`` back: the slow path's fallback."""

    def default(self, obj: Any) -> Any:
        if isinstance(obj, Rendered):
            return json.loads(obj.json)
        return super().default(obj)


_ENCODER = _Encoder()


def _default(obj: Any) -> Any:
    if isinstance(obj, Rendered):
        return orjson.Fragment(obj.json)
    return _ENCODER.default(obj)


def dumps(data: Any) -> bytes:
    """``data`` as the API writes it (TypeError: what only json.dumps can write)."""
    return orjson.dumps(data, default=_default, option=_OPTIONS)


class JSONRenderer(renderers.JSONRenderer):
    encoder_class = _Encoder

    def render(
        self,
        data: Any,
        accepted_media_type: str | None = None,
        renderer_context: Any = None,
    ) -> bytes:
        if data is None:
            return b""
        options = _OPTIONS
        if self.get_indent(accepted_media_type or "", renderer_context or {}):
            options |= orjson.OPT_INDENT_2
        try:
            return orjson.dumps(data, default=_default, option=options)
        except TypeError:
            # What orjson cannot write (an integer past 64 bits in a task's
            # output, say) json.dumps can: the same answer, more slowly.
            return super().render(data, accepted_media_type, renderer_context)  # type: ignore[no-any-return]
