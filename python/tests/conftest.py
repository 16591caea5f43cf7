"""Shared fixtures. The package under test is the installed towns_e2ee (tests/
holds no package); it finds libtowns-e2ee through TOWNS_E2EE_LIBRARY or the
system loader. TOWNS_E2EE_VECTORS_DIR names test/vectors (default: the
repository's, when the tests run from python/tests)."""

import os
import pathlib

import pytest

STREAM_1 = "20" + "a" * 62
STREAM_2 = "20" + "b" * 62
USER_A = "0x" + "1" * 40
USER_B = "0x" + "2" * 40


def vectors_dir() -> pathlib.Path:
    env = os.environ.get("TOWNS_E2EE_VECTORS_DIR")
    if env:
        return pathlib.Path(env)
    return pathlib.Path(__file__).resolve().parents[2] / "test" / "vectors"


@pytest.fixture
def memory_device():
    """A factory of devices on memory stores, closed after the test."""
    import towns_e2ee as t
    made = []

    def make(pickle_key=b"pickle key", **kwargs):
        store = t.Store.memory()
        crypto = t.Crypto(store, pickle_key, **kwargs)
        made.extend([crypto, store])
        return crypto

    yield make
    for h in made:
        h.close()
