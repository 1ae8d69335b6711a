"""The request id of the request being served (a context variable), and the log filter that prints it."""

from __future__ import annotations

import contextvars
import logging
import re

REQUEST_ID: contextvars.ContextVar[str | None] = contextvars.ContextVar("callsense_request_id", default=None)
SANE_ID = re.compile(r"^[A-Za-z0-9._:-]{1,128}$")


def request_id() -> str | None:
    return REQUEST_ID.get()


class RequestIdFilter(logging.Filter):
    """Adds ``record.request_id`` ("-" outside requests) so formats can print ``%(request_id)s``."""

    def filter(self, record: logging.LogRecord) -> bool:
        record.request_id = REQUEST_ID.get() or "-"
        return True


def install_log_filter() -> None:
    f = RequestIdFilter()
    for handler in logging.getLogger().handlers:
        if not any(isinstance(x, RequestIdFilter) for x in handler.filters):
            handler.addFilter(f)
