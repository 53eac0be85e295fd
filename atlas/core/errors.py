"""The one exception type the command line turns into a one-line message."""


class AtlasError(Exception):
    """A problem the user can fix: bad input, missing weights, unwritable paths.

    The CLI prints its message on one line and exits non-zero; library callers
    can catch it like any exception.
    """
