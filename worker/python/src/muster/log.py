"""log.py — muster's common log formats for Python programs (every muster program, C++, Python
and TypeScript, writes the same two):

    text: ``2026-12-06T13:27:21.123+00:00 INFO  [muster.worker] attached instance=ab12``
    json: ``{"time":"2026-12-06T13:27:21.123+00:00","level":"info","component":"muster.worker",
            "message":"attached","instance":"ab12"}`` (one object per line)

The component is the logger's name; ``key=value`` fields come from ``extra={"fields": {...}}``.
Owns: the two formatters and ``setup_logging`` for programs (console scripts, examples).
Must never: configure logging on import (a library leaves that to the application), write to
stdout.
"""

from __future__ import annotations

import datetime
import json
import logging
import sys
from typing import Any, Dict, Mapping, Optional, TextIO

# Level names as every muster program prints them (spdlog's short names, upper case in text).
LOG_LEVELS: Dict[str, int] = {
    "trace": logging.DEBUG,
    "debug": logging.DEBUG,
    "info": logging.INFO,
    "warn": logging.WARNING,
    "warning": logging.WARNING,
    "error": logging.ERROR,
    "critical": logging.CRITICAL,
    "off": logging.CRITICAL + 10,
}
LOG_FORMATS = ("text", "json")


def _level_name(levelno: int) -> str:
    if levelno >= logging.CRITICAL:
        return "critical"
    if levelno >= logging.ERROR:
        return "error"
    if levelno >= logging.WARNING:
        return "warn"
    if levelno >= logging.INFO:
        return "info"
    return "debug"


def _timestamp(created: float) -> str:
    t = datetime.datetime.fromtimestamp(created, tz=datetime.timezone.utc)
    return t.isoformat(timespec="milliseconds")


def _fields(record: logging.LogRecord) -> Mapping[str, Any]:
    fields = getattr(record, "fields", None)
    return fields if isinstance(fields, Mapping) else {}


def _text_value(v: Any) -> str:
    s = str(v)
    return json.dumps(s) if (not s or any(c in s for c in ' "=\n')) else s


class TextFormatter(logging.Formatter):
    """``TIME LEVEL [component] message key=value ...``; a traceback follows on its own lines."""

    def format(self, record: logging.LogRecord) -> str:
        line = f"{_timestamp(record.created)} {_level_name(record.levelno).upper():<5} [{record.name}] {record.getMessage()}"
        for k, v in _fields(record).items():
            line += f" {k}={_text_value(v)}"
        if record.exc_info:
            line += "\n" + self.formatException(record.exc_info)
        return line


class JsonFormatter(logging.Formatter):
    """One JSON object per line: time, level, component, message, then the fields."""

    def format(self, record: logging.LogRecord) -> str:
        obj: Dict[str, Any] = {
            "time": _timestamp(record.created),
            "level": _level_name(record.levelno),
            "component": record.name,
            "message": record.getMessage(),
        }
        for k, v in _fields(record).items():
            obj.setdefault(k, v if isinstance(v, (str, int, float, bool)) or v is None else str(v))
        if record.exc_info:
            obj["exception"] = self.formatException(record.exc_info)
        return json.dumps(obj, ensure_ascii=False)


def setup_logging(level: str = "info", program: Optional[str] = None, fmt: str = "text", stream: Optional[TextIO] = None) -> None:
    """Sends every log record of this process to stderr in the common ``fmt`` ("text" or
    "json") from ``level`` (trace, debug, info, warn, error, off) up. ``program`` names the
    caller in the error for a bad level or format. Raises SystemExit for a bad one."""
    who = f"{program}: " if program else ""
    if level not in LOG_LEVELS:
        raise SystemExit(f"{who}unknown log level {level!r} (use {', '.join(LOG_LEVELS)})")
    if fmt not in LOG_FORMATS:
        raise SystemExit(f"{who}unknown log format {fmt!r} (use {', '.join(LOG_FORMATS)})")
    handler = logging.StreamHandler(stream or sys.stderr)
    handler.setFormatter(JsonFormatter() if fmt == "json" else TextFormatter())
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(LOG_LEVELS[level])


__all__ = ["LOG_LEVELS", "LOG_FORMATS", "TextFormatter", "JsonFormatter", "setup_logging"]
