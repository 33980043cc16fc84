"""A real HTTP server on 127.0.0.1 for download tests, with the behaviours downloads meet in the field.

Routes (NAME is a key of ``server.files``):
  /files/NAME           honours ``Range: bytes=N-`` (206 + Content-Range)
  /norange/NAME         ignores Range, always 200 with the whole file
  /cut/NAME             first request: announces the whole length, sends half, drops the connection; then as /files
  /slow/NAME            waits ``server.delay`` seconds before answering
  /drip/NAME            as /files, but sends 64 KiB pieces ``server.drip`` seconds apart
  /drive/uc?id=NAME     Google Drive's "can't scan for viruses" page with a confirm form -> /drive/download
  /drive-cookie/uc?id=  the older variant: a ``download_warning`` cookie holds the token, no form or link
  /page/NAME            an HTML page instead of the file (quota or sign-in page)
  anything else         404
Requests arriving through a proxy carry an absolute URL; the path part is what is routed. ``server.log`` records
(path, Range header, Host header) of every request.
"""
from __future__ import annotations

import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import parse_qs, urlsplit

CONFIRM_PAGE = """<!DOCTYPE html><html><head><title>Google Drive - Virus scan warning</title></head><body>
<p>Google Drive can't scan this file for viruses.</p>
<form id="download-form" action="/drive/download" method="get">
<input type="submit" id="uc-download-link" value="Download anyway"/>
<input type="hidden" name="id" value="{id}"><input type="hidden" name="export" value="download">
<input type="hidden" name="confirm" value="t"><input type="hidden" name="uuid" value="1234-abcd"></form>
</body></html>"""
TOKEN = "Xy_9"


class Handler(BaseHTTPRequestHandler):
    server: "LocalServer"

    def log_message(self, *args) -> None:
        pass

    def do_GET(self) -> None:
        parts = urlsplit(self.path)
        query = {k: v[0] for k, v in parse_qs(parts.query).items()}
        self.server.log.append((parts.path, self.headers.get("Range"), self.headers.get("Host")))
        route, _, name = parts.path.strip("/").partition("/")
        try:
            self._route(route, name, query)
        except (BrokenPipeError, ConnectionResetError):
            pass  # the client gave up (timeout tests)

    def _route(self, route: str, name: str, query) -> None:
        files = self.server.files
        if route == "drive":
            file_id = query.get("id", "")
            if name == "download" and file_id in files and query.get("confirm") == "t" and query.get("uuid"):
                return self._send_file(files[file_id], honour_range=True)
            return self._send_html(CONFIRM_PAGE.format(id=file_id))
        if route == "drive-cookie":
            file_id = query.get("id", "")
            if file_id in files and query.get("confirm") == TOKEN:
                return self._send_file(files[file_id], honour_range=True)
            return self._send_html("<html><body>Virus scan warning</body></html>",
                                   cookie=f"download_warning_123_{file_id}={TOKEN}; Path=/")
        if name not in files:
            return self._send_status(404)
        data = files[name]
        if route == "files":
            return self._send_file(data, honour_range=True)
        if route == "norange":
            return self._send_file(data, honour_range=False)
        if route == "cut":
            if name not in self.server.cut_done:
                self.server.cut_done.add(name)
                return self._send_file(data, honour_range=False, cut_at=len(data) // 2)
            return self._send_file(data, honour_range=True)
        if route == "slow":
            time.sleep(self.server.delay)
            return self._send_file(data, honour_range=True)
        if route == "drip":
            return self._send_file(data, honour_range=True, pause=self.server.drip)
        if route == "page":
            return self._send_html("<html><body>Quota exceeded</body></html>")
        self._send_status(404)

    def _send_status(self, code: int) -> None:
        self.send_response(code)
        self.send_header("Content-Length", "0")
        self.end_headers()

    def _send_html(self, page: str, cookie: str = "") -> None:
        body = page.encode()
        self.send_response(200)
        self.send_header("Content-Type", "text/html; charset=utf-8")
        self.send_header("Content-Length", str(len(body)))
        if cookie:
            self.send_header("Set-Cookie", cookie)
        self.end_headers()
        self.wfile.write(body)

    def _send_file(self, data: bytes, honour_range: bool, cut_at: int = 0, pause: float = 0.0) -> None:
        start = 0
        requested = self.headers.get("Range", "")
        if honour_range and requested.startswith("bytes="):
            start = int(requested[len("bytes="):].split("-")[0])
            if start >= len(data):
                self.send_response(416)
                self.send_header("Content-Range", f"bytes */{len(data)}")
                self.send_header("Content-Length", "0")
                self.end_headers()
                return
            self.send_response(206)
            self.send_header("Content-Range", f"bytes {start}-{len(data) - 1}/{len(data)}")
        else:
            self.send_response(200)
        self.send_header("Content-Type", "application/octet-stream")
        self.send_header("Content-Length", str(len(data) - start))
        self.end_headers()
        body = data[start:cut_at] if cut_at else data[start:]
        step = 1 << 16
        for i in range(0, len(body), step):
            self.wfile.write(body[i:i + step])
            if pause:
                self.wfile.flush()
                time.sleep(pause)
        if cut_at:
            self.wfile.flush()
            self.close_connection = True


class LocalServer(ThreadingHTTPServer):
    daemon_threads = True

    def __init__(self) -> None:
        super().__init__(("127.0.0.1", 0), Handler)
        self.files = {}
        self.log = []
        self.cut_done = set()
        self.delay = 2.0
        self.drip = 0.02
        self.url = f"http://127.0.0.1:{self.server_address[1]}"

    def handle_error(self, request, client_address) -> None:
        pass  # clients that hang up on purpose are part of the tests

    def reset(self) -> None:
        self.files.clear()
        self.log.clear()
        self.cut_done.clear()


def start_server() -> LocalServer:
    server = LocalServer()
    threading.Thread(target=server.serve_forever, daemon=True).start()
    return server
