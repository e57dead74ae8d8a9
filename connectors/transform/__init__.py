"""Transformations (SPEC §2): one module per function, checked at save, run at copy time.

Each function (``filter.py``, ``select.py`` …) holds its parameters'
validation, the column tracking and its three runs (SQL pushed into the
source query, batches of rows, COPY text lines); ``registry.FUNCTIONS``
lists them. The definition checker calls ``check_transformations``; the copy
engine calls ``compile_pushdown`` and then ``BatchTransformer`` or
``TextLineTransformer`` for the steps left.
"""

from connectors.transform.base import Columns
from connectors.transform.batches import BatchTransformer
from connectors.transform.pushdown import Compiled, compile_pushdown, needed_columns
from connectors.transform.registry import FUNCTIONS, check_transformations
from connectors.transform.textlines import TextLineTransformer

__all__ = [
    "FUNCTIONS",
    "BatchTransformer",
    "Columns",
    "Compiled",
    "TextLineTransformer",
    "check_transformations",
    "compile_pushdown",
    "needed_columns",
]
