"""Keep credentials written into URLs out of every message and log line.

`AWS_ENDPOINT_URL=http://user:pass@minio:9000` and `MLFLOW_TRACKING_URI=https://user:pass@mlflow`
are common, and libraries put the URL into their exception text (botocore, requests, mlflow). So
every CLI error (`globe.commands.common.fail`) and every log record of the server passes through
`redact`, which keeps scheme and host and replaces the user info with `***`.
"""

from __future__ import annotations

import logging
import re

# scheme://user[:password]@  (user info never contains '/', '@' or whitespace)
_USERINFO = re.compile(r"(?i)\b([a-z][a-z0-9+.\-]*://)[^/@\s'\"<>]+@")


def redact(text: str) -> str:
    """`text` with the user info of every URL in it replaced by `***`."""
    return _USERINFO.sub(r"\1***@", text)


def short(text: str, limit: int = 300) -> str:
    """The first line of `text`, redacted and cut to `limit` characters (for client-facing errors)."""
    line = redact(str(text)).strip().splitlines()[0] if str(text).strip() else ""
    return line if len(line) <= limit else line[: limit - 1] + "…"


class RedactingFilter(logging.Filter):
    """A handler filter that redacts the formatted message and the traceback text of each record."""

    def filter(self, record: logging.LogRecord) -> bool:
        message = record.getMessage()
        cleaned = redact(message)
        if cleaned != message and record.name != "uvicorn.access":  # its formatter reads record.args
            record.msg, record.args = cleaned, None
        if record.exc_info and not record.exc_text:
            record.exc_text = redact(logging.Formatter().formatException(record.exc_info))
        elif record.exc_text:
            record.exc_text = redact(record.exc_text)
        return True


def install_log_redaction(*logger_names: str) -> None:
    """Attach one `RedactingFilter` to every handler of the root logger and of `logger_names`."""
    names = ("", *logger_names)
    for name in names:
        for handler in logging.getLogger(name).handlers:
            if not any(isinstance(f, RedactingFilter) for f in handler.filters):
                handler.addFilter(RedactingFilter())
