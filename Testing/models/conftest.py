"""Fixtures of the model tests: a real HTTP server on 127.0.0.1 (downloads, catalogs), one per test file."""
import pytest

from local_http import start_server


@pytest.fixture(scope="module")
def server():
    srv = start_server()
    yield srv
    srv.shutdown()
