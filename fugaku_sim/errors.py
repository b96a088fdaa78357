"""Errors a user can cause, reported in one line with exit status 2.

Everything under ``fugaku_sim`` raises :class:`UserError` (or a subclass) for bad input:
a YAML typo, an impossible layout, a corrupt file. The command line catches it at the edge,
prints ``fugaku-sim: error: <message>`` and exits 2 without a traceback. Any other exception is
an internal failure (exit 1).
"""

from __future__ import annotations


class UserError(Exception):
    """Bad input that the user can fix; the message names what to fix, on one line."""

    def __init__(self, message: str) -> None:
        super().__init__(" ".join(message.split()))


class SpecError(UserError):
    """A cluster, model, training or layout specification is invalid."""
