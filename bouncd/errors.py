"""One exception tree for bouncd.

::

    BouncdError
    ├── ConfigError      settings file or environment is wrong
    ├── ParseError       a message could not be read (the parser reports it, never raises it out)
    ├── StoreError       the database failed; callers answer 4xx / exit 75 so the sender retries
    │   └── NotFound     an address, message or event that does not exist
    └── UsageError       a command was called with bad arguments
"""

from __future__ import annotations


class BouncdError(Exception):
    """Base of every error bouncd raises on purpose."""


class ConfigError(BouncdError):
    """The configuration is invalid."""


class ParseError(BouncdError):
    """A message could not be parsed."""


class StoreError(BouncdError):
    """The database could not be read or written."""


class NotFound(StoreError):
    """The requested record does not exist."""


class UsageError(BouncdError):
    """A command was called with bad arguments."""
