"""Griffe extension for the docs build: the package's docstrings head their doctests with
``Example:`` (singular); griffe's Google parser renders only ``Examples:`` sections as code,
so without this the doctest output would be read as Markdown (``[0][1]`` as a link)."""

from __future__ import annotations

import re
from typing import Any

import griffe

_HEADER = re.compile(r"^(\s*)Example:\s*$", re.M)


class DoctestExamples(griffe.Extension):
    def on_instance(self, *, obj: griffe.Object, **kwargs: Any) -> None:
        if obj.docstring is not None:
            obj.docstring.value = _HEADER.sub(r"\1Examples:", obj.docstring.value)
