"""Downloads against a real HTTP server on 127.0.0.1: full, interrupted and resumed, wrong checksum, a server that
ignores Range, 404, timeout, unreachable host, Google Drive's confirmation step, proxies, and concurrent downloads."""
from __future__ import annotations

import hashlib
import io
import json
import os
import socket
import threading

import pytest
import requests

from hsam.models.catalog import RemoteFile
from hsam.models.download import DownloadError, download
from hsam.models.filelock import ExclusiveCreateLock, FlockLock, fcntl
from hsam.progress import JsonLinesReporter

DATA = os.urandom(600_000)
SHA = hashlib.sha256(DATA).hexdigest()
SIZE = len(DATA)


@pytest.fixture
def web(server, monkeypatch):
    for var in ("HTTP_PROXY", "HTTPS_PROXY", "ALL_PROXY", "http_proxy", "https_proxy", "all_proxy"):
        monkeypatch.delenv(var, raising=False)
    monkeypatch.setenv("NO_PROXY", "127.0.0.1,localhost")
    server.reset()
    server.files["w.bin"] = DATA
    return server


def _file(server, route, size=SIZE, sha=SHA):
    return RemoteFile("w.bin", f"{server.url}/{route}/w.bin", size, sha)


def _fetch(remote, folder, **kw):
    kw.setdefault("retries", 2)
    kw.setdefault("backoff", 0.0)
    return download(remote, folder, **kw)


def _leftovers(folder):
    return sorted(p.name for p in folder.iterdir()) if folder.exists() else []


def test_full_download_with_jsonl_progress(web, tmp_path):
    out = io.StringIO()
    path = _fetch(_file(web, "files"), tmp_path, reporter=JsonLinesReporter(out))
    assert path.read_bytes() == DATA
    assert _leftovers(tmp_path) == ["w.bin"]  # no .part, no .lock
    events = [json.loads(line) for line in out.getvalue().splitlines()]
    progress = [e for e in events if e["event"] == "progress"]
    assert progress[-1] == {"event": "progress", "done": len(DATA), "total": len(DATA), "stage": "download",
                            "file": "w.bin"}


def test_interrupted_download_resumes_with_range(web, tmp_path):
    log = io.StringIO()
    assert _fetch(_file(web, "cut"), tmp_path, reporter=JsonLinesReporter(log)).read_bytes() == DATA
    first, second = [r for _, r, _ in web.log]
    assert first is None and 0 < int(second[len("bytes="):-1]) <= len(DATA) // 2  # resumed, not restarted
    assert "trying again" in log.getvalue()


def test_partial_file_from_an_earlier_run_is_resumed(web, tmp_path):
    (tmp_path / "w.bin.part").write_bytes(DATA[:250_000])
    assert _fetch(_file(web, "files"), tmp_path).read_bytes() == DATA
    assert [r for _, r, _ in web.log] == ["bytes=250000-"]
    assert _leftovers(tmp_path) == ["w.bin"]


def test_server_that_ignores_range_starts_over(web, tmp_path):
    (tmp_path / "w.bin.part").write_bytes(DATA[:250_000])
    log = io.StringIO()
    assert _fetch(_file(web, "norange"), tmp_path, reporter=JsonLinesReporter(log)).read_bytes() == DATA
    assert "cannot resume" in log.getvalue()


def test_wrong_checksum_is_rejected_and_leaves_nothing(web, tmp_path):
    with pytest.raises(DownloadError) as exc:
        _fetch(_file(web, "files", sha="0" * 64), tmp_path)
    message = str(exc.value)
    assert "sha256" in message and "rejected" in message and f"{web.url}/files/w.bin" in message
    assert _leftovers(tmp_path) == []


def test_404_names_the_url_and_is_not_retried(web, tmp_path):
    remote = RemoteFile("gone.bin", f"{web.url}/files/gone.bin", 10, "0" * 64)
    with pytest.raises(DownloadError) as exc:
        _fetch(remote, tmp_path)
    assert "404" in str(exc.value) and remote.url in str(exc.value)
    assert len(web.log) == 1 and _leftovers(tmp_path) == []


def test_timeout_is_retried_then_reported_with_url_and_folder(web, tmp_path):
    web.delay = 1.0
    with pytest.raises(DownloadError) as exc:
        _fetch(_file(web, "slow"), tmp_path, timeout=0.2, retries=1)
    message = str(exc.value)
    assert "timed out" in message and f"{web.url}/slow/w.bin" in message and str(tmp_path) in message
    assert len(web.log) == 2 and _leftovers(tmp_path) == []


def test_unreachable_host_says_where_to_put_the_file(web, tmp_path):
    with socket.socket() as s:  # a port nobody listens on
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    remote = RemoteFile("w.bin", f"http://127.0.0.1:{port}/w.bin", len(DATA), SHA)
    with pytest.raises(DownloadError) as exc:
        _fetch(remote, tmp_path / "weights", retries=0)
    message = str(exc.value)
    assert "w.bin" in message and remote.url in message and str(tmp_path / "weights") in message
    assert "\n" not in message


@pytest.mark.parametrize("route", ["drive", "drive-cookie"])
def test_google_drive_confirmation_is_followed(web, tmp_path, route):
    remote = RemoteFile("w.bin", f"{web.url}/{route}/uc?export=download&id=w.bin", None, SHA)
    assert _fetch(remote, tmp_path).read_bytes() == DATA
    assert len(web.log) == 2


def test_a_web_page_instead_of_the_file_is_an_error(web, tmp_path):
    with pytest.raises(DownloadError) as exc:
        _fetch(_file(web, "page"), tmp_path)
    assert "web page" in str(exc.value) and _leftovers(tmp_path) == []


def test_present_file_is_verified_without_network(web, tmp_path, monkeypatch):
    (tmp_path / "w.bin").write_bytes(DATA)

    def no_network(*args, **kwargs):
        raise AssertionError("network used")

    monkeypatch.setattr(requests.Session, "send", no_network)
    assert _fetch(RemoteFile("w.bin", "http://unreachable.invalid/w.bin", len(DATA), SHA), tmp_path).is_file()


def test_damaged_present_file_is_downloaded_again(web, tmp_path):
    (tmp_path / "w.bin").write_bytes(DATA[:-1] + b"x")
    assert _fetch(_file(web, "files"), tmp_path).read_bytes() == DATA


def test_unpinned_file_needs_explicit_trust(web, tmp_path):
    with pytest.raises(DownloadError) as exc:
        _fetch(_file(web, "files", sha=None), tmp_path)
    assert "--trust-unpinned" in str(exc.value) and web.log == []
    log = io.StringIO()
    _fetch(_file(web, "files", sha=None), tmp_path, trust_unpinned=True, reporter=JsonLinesReporter(log))
    assert SHA in log.getvalue()


def test_proxy_from_the_environment(web, tmp_path, monkeypatch):
    monkeypatch.setenv("HTTP_PROXY", web.url)
    monkeypatch.delenv("NO_PROXY")
    remote = RemoteFile("w.bin", "http://weights.example.invalid/files/w.bin", len(DATA), SHA)
    assert _fetch(remote, tmp_path).read_bytes() == DATA
    assert web.log[0][2] == "weights.example.invalid"


LOCKS = [ExclusiveCreateLock] + ([FlockLock] if fcntl else [])


@pytest.mark.parametrize("lock", LOCKS)
def test_concurrent_downloads_end_with_one_good_copy(web, tmp_path, monkeypatch, lock):
    monkeypatch.setattr("hsam.models.download.FileLock", lambda path, on_wait: lock(path, on_wait))
    results, errors = [], []

    def run():
        try:
            results.append(_fetch(_file(web, "drip"), tmp_path))
        except Exception as exc:  # reported below
            errors.append(exc)

    threads = [threading.Thread(target=run) for _ in range(2)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(30)
    assert not errors and len(results) == 2
    assert results[0].read_bytes() == DATA
    assert len(web.log) == 1  # the second waited for the first and found its verified copy
    assert _leftovers(tmp_path) == ["w.bin"]


def test_stale_exclusive_lock_is_broken(tmp_path):
    stale = tmp_path / "x.lock"
    stale.write_text("12345")
    os.utime(stale, (0, 0))
    with ExclusiveCreateLock(stale, stale_after=60):
        assert stale.read_text() == str(os.getpid())
    assert not stale.exists()
