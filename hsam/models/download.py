"""Verified downloads with ``requests``: streaming with progress, resume of interrupted downloads (HTTP Range),
timeouts and retries, proxies from the environment (HTTPS_PROXY, NO_PROXY, ...), Google Drive's confirmation page,
and a sha256 check before the file is renamed into place. A file without a pinned sha256 is refused unless the
caller trusts it explicitly; its computed sha256 is then reported."""
from __future__ import annotations

import os
import time
from pathlib import Path
from typing import Optional, Union

import requests

from ..progress import ConsoleReporter, Reporter
from ..weights import CheckpointError, sha256_of
from .catalog import RemoteFile
from .filelock import FileLock
from .gdrive import confirmation_request
from .safe_path import contained

CHUNK = 1 << 16
# Servers may compress on the fly; byte ranges and sizes only make sense on the file's own bytes.
HEADERS = {"Accept-Encoding": "identity", "User-Agent": "hsam"}


class DownloadError(CheckpointError):
    """A file could not be fetched or failed its check; the message names the file and where it comes from."""


class _Retry(Exception):
    """A failure worth another try: network error, timeout, connection cut, server error."""


def human_size(n: Optional[int]) -> str:
    if n is None:
        return "unknown size"
    value, unit = float(n), 0
    while value >= 1000 and unit < 3:
        value, unit = value / 1000, unit + 1
    return f"{n} B" if unit == 0 else f"{value:.1f} {('KB', 'MB', 'GB')[unit - 1]}"


def unpinned_refusal(names: str) -> DownloadError:
    return DownloadError(f"{names}: no pinned sha256, so what is downloaded cannot be checked; pass "
                         "--trust-unpinned to accept it anyway (its computed sha256 is shown)")


def download(file: RemoteFile, folder: Union[str, Path], reporter: Optional[Reporter] = None,
             trust_unpinned: bool = False, timeout: float = 30.0, retries: int = 3, backoff: float = 2.0) -> Path:
    """``folder/file.name``, downloaded unless a copy that passes its check is already there (then no network)."""
    reporter = reporter or ConsoleReporter()
    folder = Path(folder)
    if not file.sha256 and not trust_unpinned:
        raise unpinned_refusal(file.name)
    # The name is the catalog's, never the server's (a Content-Disposition header or the URL's last part).
    target = contained(folder, file.name, "catalog file name")
    folder.mkdir(parents=True, exist_ok=True)
    lock = FileLock(contained(folder, f"{file.name}.lock", "lock file"),
                    on_wait=lambda: reporter.log(f"{file.name}: another process is downloading it; waiting"))
    with lock:
        if target.is_file() and _accept_present(target, file, reporter):
            return target
        if not file.url:
            raise DownloadError(f"{file.name}: not in {folder} and has no download address")
        part = contained(folder, f"{file.name}.part", "partial download")
        with requests.Session() as session:  # trust_env: proxies and CA bundle from the environment
            session.headers.update(HEADERS)
            _fetch(session, file, part, reporter, lock, timeout, retries, backoff)
        _install(part, target, file, reporter)
    return target


def _accept_present(target: Path, file: RemoteFile, reporter: Reporter) -> bool:
    digest = sha256_of(target)
    if not file.sha256:
        reporter.log(f"{target}: already present (sha256 {digest}, not pinned)")
        return True
    if digest == file.sha256.lower():
        reporter.log(f"{target}: already present and verified")
        return True
    reporter.log(f"{target}: sha256 does not match, downloading it again")
    target.unlink()
    return False


def _size(path: Path) -> int:
    return path.stat().st_size if path.is_file() else 0


def _drop_if_empty(part: Path) -> None:
    if part.is_file() and not _size(part):
        part.unlink()


def _fetch(session, file, part, reporter, lock, timeout, retries, backoff) -> None:
    failures = 0
    while True:
        before = _size(part)
        try:
            _fetch_once(session, file, part, reporter, lock, timeout)
            return
        except _Retry as exc:
            failures = 0 if _size(part) > before else failures + 1  # count only tries that made no progress
            if failures > retries:
                _drop_if_empty(part)  # a non-empty partial stays, so the next run resumes it
                raise DownloadError(f"cannot download {file.name} from {file.url} ({exc}). Offline or behind a "
                                    f"firewall? Fetch that URL another way and put the file in {part.parent}, or "
                                    "run `hsam models import FILE`; then run the command again") from None
            reporter.log(f"{file.name}: {exc}; trying again ({max(failures, 1)}/{retries})")
            time.sleep(backoff * 2 ** max(failures - 1, 0))
        except BaseException:
            _drop_if_empty(part)
            raise


def _fetch_once(session, file, part, reporter, lock, timeout) -> None:
    offset = _size(part)
    if file.size is not None and offset > file.size:  # longer than the file: not a piece of it
        part.unlink()
        offset = 0
    try:
        response = _get(session, file, {"Range": f"bytes={offset}-"} if offset else {}, timeout)
        with response:
            start, total = _body_range(response, offset, file, part)
            if start is None:
                return
            if offset and not start:
                reporter.log(f"{file.name}: the server cannot resume, starting over")
            _write_body(response, part, start, _Progress(reporter, file.name, total, start), lock)
    except (requests.ConnectionError, requests.Timeout, requests.exceptions.ChunkedEncodingError) as exc:
        raise _Retry(_reason(exc)) from None
    if total is not None and _size(part) < total:
        raise _Retry(f"connection closed after {_size(part)} of {total} bytes")


def _write_body(response, part: Path, start: int, progress: "_Progress", lock) -> None:
    try:
        with open(part, "r+b" if start else "wb") as out:
            out.truncate(start)
            out.seek(start)
            for chunk in response.iter_content(CHUNK):
                out.write(chunk)
                progress.add(len(chunk))
                lock.refresh()
            out.flush()
            os.fsync(out.fileno())  # the bytes are on disk before the file is checked and renamed
    finally:
        progress.finish()


class _Progress:
    """Progress events at most every ``interval`` seconds: a 2.5 GB file arrives in 40 000 chunks."""

    def __init__(self, reporter: Reporter, name: str, total: Optional[int], done: int, interval: float = 0.25):
        self.reporter, self.name, self.total, self.done, self.interval = reporter, name, total, done, interval
        self._sent = 0.0

    def add(self, n: int) -> None:
        self.done += n
        if time.monotonic() - self._sent >= self.interval:
            self._send()

    def finish(self) -> None:
        self._send()
        self.reporter.close()  # ends the console bar before the next message

    def _send(self) -> None:
        self._sent = time.monotonic()
        self.reporter.progress(self.done, self.total, stage="download", file=self.name)


def _reason(exc: Exception) -> str:
    if isinstance(exc, requests.Timeout):
        return "timed out"
    text = str(exc)
    return f"{type(exc).__name__}: {text[:200]}" if text else type(exc).__name__


def _is_page(response) -> bool:
    return response.ok and response.headers.get("Content-Type", "").startswith("text/html")


def _get(session, file: RemoteFile, headers, timeout):
    response = session.get(file.url, headers=headers, stream=True, timeout=timeout)
    if not _is_page(response):
        return response
    follow = confirmation_request(response.text, response.url, session.cookies.get_dict())
    response.close()
    if follow is not None:
        url, params = follow
        response = session.get(url, params=params, headers=headers, stream=True, timeout=timeout)
        if not _is_page(response):
            return response
        response.close()
    raise DownloadError(f"{file.url} answered with a web page instead of {file.name} (quota, sign-in or firewall "
                        "notice?); open the URL in a browser, save the file and run `hsam models import FILE`")


def _body_range(response, offset: int, file: RemoteFile, part: Path):
    """(byte offset where the body goes, total size) for a usable response; (None, None) when the partial file
    is already complete."""
    status = response.status_code
    content_range = response.headers.get("Content-Range", "")
    total = content_range.rsplit("/", 1)[-1] if "/" in content_range else ""
    total = int(total) if total.isdigit() else None
    if status == 200:
        length = response.headers.get("Content-Length", "")
        return 0, int(length) if length.isdigit() else file.size
    if status == 206:
        start = content_range.split(" ")[-1].split("-")[0]
        if start.isdigit() and int(start) == offset:
            return offset, total or file.size
    if status == 416 and offset == (total or file.size):
        return None, None
    if status in (206, 416):  # a range we did not ask for, or a partial the server does not recognise
        part.unlink()
        raise _Retry(f"the server refused to resume (HTTP {status})")
    if status in (408, 429) or status >= 500:
        raise _Retry(f"HTTP {status} {response.reason}")
    raise DownloadError(f"cannot download {file.name}: {file.url} answered HTTP {status} {response.reason}; the "
                        "address may have moved (see `hsam models info`)")


def _install(part: Path, target: Path, file: RemoteFile, reporter: Reporter) -> None:
    """The check comes before the rename: a file that fails it never appears under its real name."""
    size = _size(part)
    digest = sha256_of(part)
    if file.sha256 and digest != file.sha256.lower():
        part.unlink()
        raise DownloadError(f"{file.name} from {file.url}: sha256 {digest} ({size} bytes) does not match the "
                            f"expected {file.sha256} ({file.size} bytes); the file was rejected and not installed")
    if not file.sha256 and file.size is not None and size != file.size:
        part.unlink()
        raise DownloadError(f"{file.name} from {file.url}: {size} bytes instead of {file.size}; the file was "
                            "rejected and not installed")
    if not file.sha256:
        reporter.log(f"{file.name}: accepted without a pinned sha256; its sha256 is {digest}")
    os.replace(part, target)
