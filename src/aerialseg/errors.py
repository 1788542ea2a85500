"""The one exception type that means "the user gave us something we cannot use"."""


class AerialSegError(Exception):
    """A user mistake (bad file, flag or data): the CLI prints it as one line, no traceback."""
