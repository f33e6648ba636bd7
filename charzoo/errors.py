"""The one exception type for mistakes a user can fix."""

from __future__ import annotations


class CharzooError(Exception):
    """A user-facing error: one line that says what is wrong and what to do.

    Args:
        message: the line shown to the user.
        exit_code: 2 for bad input or usage (as click does), 1 when the work could not be done.
    """

    def __init__(self, message: str, exit_code: int = 1):
        super().__init__(message)
        self.exit_code = exit_code
