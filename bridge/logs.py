"""Logging for every ipsbridge process: structlog JSON lines on stderr.

Configured once per process (the first call wins), so `ipsbridge run
--log-level` set by the command line holds in the supervisor too; worker
processes inherit it through fork.  Counters go out on a timer, never as a
log line per packet.
"""
from __future__ import annotations

import logging
import sys

import structlog


def configure_logging(level: str = "info") -> None:
    """JSON lines with ISO UTC timestamps on stderr, at LEVEL; no-op when already configured."""
    if structlog.is_configured():
        return
    structlog.configure(
        processors=[
            structlog.processors.add_log_level,
            structlog.processors.TimeStamper(fmt="iso", utc=True),
            structlog.processors.dict_tracebacks,
            structlog.processors.JSONRenderer(),
        ],
        wrapper_class=structlog.make_filtering_bound_logger(getattr(logging, level.upper())),
        logger_factory=structlog.PrintLoggerFactory(sys.stderr),
        cache_logger_on_first_use=False,
    )
