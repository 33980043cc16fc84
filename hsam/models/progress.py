"""Where a command's messages and download progress go: to a person (text on stdout, tqdm bars on stderr) or to a
program such as the Slicer module (one JSON object per line on stdout: progress, log, result and error events)."""
from __future__ import annotations

import json
import sys
import time
from typing import Any, Optional, TextIO

MODES = ("bar", "jsonl", "none")


class Reporter:
    def __init__(self, mode: str = "bar", stream: Optional[TextIO] = None, interval: float = 0.25) -> None:
        if mode not in MODES:
            raise ValueError(f"progress mode must be one of {', '.join(MODES)}, got {mode!r}")
        self.mode = mode
        self.stream = stream
        self.interval = interval  # seconds between JSON progress events, so a fast download does not flood the reader

    @property
    def out(self) -> TextIO:
        return self.stream or sys.stdout  # looked up late so pytest's capsys and redirections see the output

    def _emit(self, event: str, **data: Any) -> None:
        self.out.write(json.dumps(dict(event=event, **data)) + "\n")
        self.out.flush()

    def log(self, message: str) -> None:
        if self.mode == "jsonl":
            self._emit("log", message=message)
        else:
            print(message, file=self.out, flush=True)

    def result(self, text: str, **data: Any) -> None:
        if self.mode == "jsonl":
            self._emit("result", **data)
        elif text:
            print(text, file=self.out, flush=True)

    def error(self, message: str) -> None:
        """Only JSON readers need this: for people the ``hsam`` command prints the error on stderr."""
        if self.mode == "jsonl":
            self._emit("error", message=message)

    def bar(self, name: str, total: Optional[int], initial: int = 0) -> "ProgressBar":
        return ProgressBar(self, name, total, initial)


class ProgressBar:
    def __init__(self, reporter: Reporter, name: str, total: Optional[int], initial: int) -> None:
        self.reporter = reporter
        self.name = name
        self.total = total
        self.done = initial
        self._last = 0.0
        self._tqdm = None
        if reporter.mode == "bar":
            from tqdm import tqdm

            self._tqdm = tqdm(total=total, initial=initial, desc=name, unit="B", unit_scale=True, unit_divisor=1024,
                              file=sys.stderr, leave=False, disable=None)

    def __enter__(self) -> "ProgressBar":
        self._send(force=True)
        return self

    def update(self, n: int) -> None:
        self.done += n
        if self._tqdm is not None:
            self._tqdm.update(n)
        self._send()

    def __exit__(self, *exc: Any) -> None:
        self._send(force=True)
        if self._tqdm is not None:
            self._tqdm.close()

    def _send(self, force: bool = False) -> None:
        now = time.monotonic()
        if self.reporter.mode == "jsonl" and (force or now - self._last >= self.reporter.interval):
            self._last = now
            self.reporter._emit("progress", file=self.name, bytes=self.done, total=self.total)
