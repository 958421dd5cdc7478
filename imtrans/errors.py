"""The one exception type for user-facing mistakes.

Anything raised as :class:`ImtransError` is a message for a person: the CLI
prints it as one line (no traceback) and exits with status 1.  Internal bugs
stay ordinary exceptions so they keep their tracebacks.
"""


class ImtransError(Exception):
    """A user-facing error: bad recipe, bad file, bad argument.  Its text is the whole message."""


class RecipeError(ImtransError):
    """A recipe file or an override that does not validate."""


class ImtransWarning(UserWarning):
    """A problem worth a person's attention that does not stop the work (the CLI prints it as one line)."""
