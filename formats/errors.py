"""The one exception hierarchy of neco.

Every error neco raises on bad input (a corrupt file, an unsupported feature, a model that
does not match the file, an invalid argument) is a `NecoError`. Adapters translate it to
their host's convention: the CLI prints one line and exits non-zero, the Pillow plugin
raises `SyntaxError` / `OSError`.
"""


class NecoError(Exception):
    """Base of every error neco raises on bad input."""


class CorruptDataError(NecoError):
    """The data is not a valid `.neco` stream: bad magic, CRC mismatch, truncation, bad field."""


class UnsupportedError(NecoError):
    """A valid stream that uses a version or feature this build does not implement."""


class ModelError(NecoError):
    """The model named by the file is unknown, or its weights differ from the ones used to encode."""


class InvalidArgumentError(NecoError, ValueError):
    """An argument from the caller is out of range or of the wrong kind."""
