"""The exceptions ctprep raises: the command-line tools' message and hint, as Python classes.

Every error is a :class:`CtprepError`; each kind also derives from the built-in exception a
Python user would catch for it (``OSError``, ``ValueError``, ``MemoryError``).
"""


class CtprepError(Exception):
    """A ctprep failure: ``message`` names what it was reading, ``hint`` says the fix."""

    def __init__(self, message, hint=None, path=None, kind=None):
        super().__init__(message)
        self.message = message
        self.hint = hint
        self.path = path
        self.kind = kind

    def __str__(self):
        return self.message if not self.hint else f"{self.message}\n  hint: {self.hint}"


class CtprepIOError(CtprepError, OSError):
    """Reading or writing failed (a missing file, permissions, a full disk)."""


class InputError(CtprepError, ValueError):
    """The input is malformed, truncated or inconsistent (a corrupt file, a mask on another grid)."""


class UnsupportedError(CtprepError):
    """The input is valid but uses something ctprep does not handle (a codec, a dtype)."""


class TooLargeError(CtprepError, MemoryError):
    """The input claims more memory than allowed (CTPREP_MAX_BYTES); refused before allocating."""


class UsageError(CtprepError, ValueError):
    """The call asked for something contradictory or impossible (a bad argument)."""


class EmptyResultError(CtprepError):
    """The work ran but found nothing (no series, no lungs)."""
