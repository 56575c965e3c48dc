"""Rows of tests/test_bad_inputs.py's table (issue #22): entry_points.

``cases(h)`` returns rows ``(area, what, call(ws), error type, message regex)``; ``h`` is the test_bad_inputs module, whose
helpers (``h.cli``, ``h._train``, ``h._data``, ``h.V``, ...) and workspace fixture the rows use. A row's call may have a
``prepare(ws)`` attribute that seeds files before the workspace is hashed.
"""

from __future__ import annotations


def cases(h) -> list[tuple]:
    return []
