"""Metric names used by a PromQL expression (promtool has no name extractor).

The expression is reduced step by step to the identifiers that can only be
metric names: Grafana variables and string literals go first (a label
value may look like anything), then label matchers ``{...}``, range and
subquery brackets ``[...]``, the label lists of ``by``/``without``/``on``/
``ignoring``/``group_left``/``group_right``, and numbers and durations. Of
the identifiers left, those followed by ``(`` are functions or aggregations
and the PromQL keywords are operators; the rest are metric names.
"""

from __future__ import annotations

import re

_GRAFANA_VARIABLE = re.compile(r"\$(?:\{[^}]*\}|\w+)")
_STRING = re.compile(r'"(?:[^"\\]|\\.)*"|\'(?:[^\'\\]|\\.)*\'|`[^`]*`')
_MATCHERS = re.compile(r"\{[^{}]*\}")
_BRACKETS = re.compile(r"\[[^\[\]]*\]")
_LABEL_LIST = re.compile(
    r"\b(by|without|on|ignoring|group_left|group_right)\s*\([^()]*\)", re.IGNORECASE
)
_NUMBER = re.compile(r"(?<![\w:])(?:0x[0-9a-fA-F]+|[0-9][0-9.eE+\-]*(?:[smhdwy]|ms)?)")
_IDENTIFIER = re.compile(r"[a-zA-Z_:][a-zA-Z0-9_:]*(?=\s*(\()?)")
KEYWORDS = frozenset(
    {"and", "or", "unless", "by", "without", "on", "ignoring", "group_left", "group_right"}
    | {"bool", "offset", "inf", "nan", "atan2", "start", "end"}
)


def metric_names(expression: str) -> set[str]:
    """The metric names ``expression`` selects."""
    text = _GRAFANA_VARIABLE.sub("", expression)
    text = _STRING.sub('""', text)
    text = _MATCHERS.sub("", text)
    while _BRACKETS.search(text):
        text = _BRACKETS.sub("", text)
    text = _LABEL_LIST.sub("", text)
    text = _NUMBER.sub("", text)
    names = set()
    for match in _IDENTIFIER.finditer(text):
        name, call = match.group(0), match.group(1)
        if call or name.lower() in KEYWORDS:
            continue
        names.add(name)
    return names
