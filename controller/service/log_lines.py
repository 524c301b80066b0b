"""What a log line of the service looks like: its structured fields in the text, or one JSON object.

Why it is built this way:

- **The fields are the message.** The controller logs `log.warning("device not answering",
  extra={"device": ..., "link": ...})`: the words say what happened, the fields say to what. A format
  that prints only the words made nine identical "device not answering" lines; the text format appends
  every field as `key=value` (quoted when it holds spaces), so the line names the device, the link, the
  space, the run.
- **JSON for the journal collectors.** `--log-format json` writes one object per line (`ts`, `level`,
  `logger`, `message`, the fields, `exc` for a traceback) for a collector that indexes fields rather
  than parsing text; values that JSON cannot hold are written as their text.
- **No secret leaves.** Both formats pass the finished line through `mask_secrets`, so a database URL
  with its password is masked whichever code path (a driver's exception, a traceback) carried it here.
"""

from __future__ import annotations

import json
import logging
import math
import sys
import time
from typing import Any, Final

from controller.config.secrets import mask_secrets

FORMATS: Final = ("text", "json")

# what every LogRecord carries; anything else on a record came in through `extra=`
_STANDARD: Final = frozenset(
    logging.LogRecord("", 0, "", 0, "", None, None).__dict__.keys() | {"message", "asctime", "taskName"}
)


def fields_of(record: logging.LogRecord) -> dict[str, Any]:
    """The structured fields a call passed with `extra=`, in the order given."""
    return {k: v for k, v in record.__dict__.items() if k not in _STANDARD and not k.startswith("_")}


def _shown(value: Any) -> str:
    text = value if isinstance(value, str) else repr(value) if isinstance(value, float) else str(value)
    if not text or any(c.isspace() or c in '"=' for c in text):
        return json.dumps(text, ensure_ascii=False)
    return text


class FieldsFormatter(logging.Formatter):
    """`2026-01-01 10:00:00,000 WARNING controller.line.poller: device not answering device=x link=y`."""

    def __init__(self) -> None:
        super().__init__("%(asctime)s %(levelname)s %(name)s: %(message)s")

    def formatMessage(self, record: logging.LogRecord) -> str:
        line = super().formatMessage(record)
        fields = fields_of(record)
        if fields:
            line += " " + " ".join(f"{key}={_shown(value)}" for key, value in fields.items())
        return line

    def format(self, record: logging.LogRecord) -> str:
        return mask_secrets(super().format(record))


class JsonFormatter(logging.Formatter):
    """One JSON object per line: ts (epoch s), time (UTC ISO 8601), level, logger, message, the fields."""

    def format(self, record: logging.LogRecord) -> str:
        body: dict[str, Any] = {
            "ts": record.created,
            "time": time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(record.created))
            + f".{int(record.msecs):03d}Z",
            "level": record.levelname,
            "logger": record.name,
            "message": record.getMessage(),
        }
        for key, value in fields_of(record).items():
            body.setdefault(key, _plain(value))
        if record.exc_info:
            body["exc"] = self.formatException(record.exc_info)
        elif record.exc_text:
            body["exc"] = record.exc_text
        return mask_secrets(json.dumps(body, ensure_ascii=False, default=str, allow_nan=False))


def _plain(value: Any) -> Any:
    """JSON-ready: non-finite numbers as their text (JSON has none), containers and the rest as text."""
    if value is None or isinstance(value, bool | int | str):
        return value
    if isinstance(value, float):
        return value if math.isfinite(value) else str(value)
    return str(value)


def configure_logging(level: str, log_format: str = "text") -> None:
    """The process's one stderr handler, in the chosen format (replacing any set before)."""
    if log_format not in FORMATS:
        raise ValueError(f"log format {log_format!r}: one of {', '.join(FORMATS)}")
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(JsonFormatter() if log_format == "json" else FieldsFormatter())
    root = logging.getLogger()
    for old in list(root.handlers):
        root.removeHandler(old)
    root.addHandler(handler)
    root.setLevel(getattr(logging, level))


__all__ = ["FORMATS", "FieldsFormatter", "JsonFormatter", "configure_logging", "fields_of"]
