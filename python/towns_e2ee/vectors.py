"""The conformance vectors (test/vectors, docs/vectors.md), verified by the library."""

import json
from ctypes import byref, c_size_t
from typing import List, NamedTuple

from . import _lib
from ._core import check, path_arg, take_string


class VectorsResult(NamedTuple):
    passed: int
    failed: int
    #: One line per failure: "<file> tcId <n> (<type>, <comment>): expected ..., got ...".
    failures: List[str]


def verify_vectors(directory) -> VectorsResult:
    """Runs every test of every ``*.json`` vector file in ``directory`` through the
    library (``towns_vectors_verify``). Failures are the result, not an error;
    TownsError(INVALID_ARGUMENT) when ``directory`` cannot be listed."""
    passed, failed = c_size_t(0), c_size_t(0)
    report = _lib.towns_string()
    check(_lib.lib.towns_vectors_verify(path_arg(directory, "directory"), byref(passed), byref(failed), byref(report)))
    return VectorsResult(passed.value, failed.value, json.loads(take_string(report)))
