"""Progress for people (tqdm on stderr) or for the Slicer modules (one JSON object per line on stdout).

Events: {"event": "progress", "done": n, "total": m, ...}, {"event": "log", "message": ...},
{"event": "result", ...}, {"event": "error", "message": ...}; training adds its own event names. Every line is
strict JSON: a number that is not finite is written as null (docs/command-line.md).
"""
from __future__ import annotations

import json
import math
import numbers
import sys
from typing import Any, Optional, TextIO

EXIT_ERROR = 1


class Reporter:
    def event(self, name: str, **fields: Any) -> None:
        raise NotImplementedError

    def progress(self, done: int, total: int, **fields: Any) -> None:
        self.event("progress", done=done, total=total, **fields)

    def log(self, message: str) -> None:
        self.event("log", message=message)

    def close(self) -> None:
        pass


class JsonLinesReporter(Reporter):
    def __init__(self, stream: Optional[TextIO] = None) -> None:
        self.stream = stream or sys.stdout

    def event(self, name: str, **fields: Any) -> None:
        # Strict JSON: a NaN or infinite number becomes null (json.dumps would write NaN/Infinity, which JSON
        # readers reject), and anything else that is not JSON fails here rather than in the reader.
        self.stream.write(json.dumps(json_safe({"event": name, **fields}), allow_nan=False) + "\n")
        self.stream.flush()


def json_safe(value: Any) -> Any:
    """``value`` with every non-finite number replaced by None and numpy numbers made plain."""
    if isinstance(value, dict):
        return {key: json_safe(item) for key, item in value.items()}
    if isinstance(value, (list, tuple)):
        return [json_safe(item) for item in value]
    if isinstance(value, numbers.Integral) and not isinstance(value, bool):
        return int(value)
    if isinstance(value, numbers.Real) and not isinstance(value, bool):
        return float(value) if math.isfinite(value) else None
    return value


class ConsoleReporter(Reporter):
    """tqdm bars for ``progress`` events, plain lines for the rest."""

    def __init__(self) -> None:
        self._bar = None
        self._bar_key = None

    def event(self, name: str, **fields: Any) -> None:
        from tqdm import tqdm

        if name == "progress":
            key = (fields.get("stage"), fields["total"], fields.get("case"))
            if self._bar is None or self._bar_key != key:
                self.close()
                self._bar = tqdm(total=fields["total"], desc=str(fields.get("stage") or ""), file=sys.stderr,
                                 leave=False)
                self._bar_key = key
            self._bar.update(fields["done"] - self._bar.n)
        else:
            text = fields.get("message") or ", ".join(f"{k}={v}" for k, v in fields.items())
            print(f"{name}: {text}" if name != "log" else text, file=sys.stderr)

    def close(self) -> None:
        if self._bar is not None:
            self._bar.close()
            self._bar = None


def make_reporter(kind: Optional[str]) -> Reporter:
    return JsonLinesReporter() if kind == "jsonl" else ConsoleReporter()
