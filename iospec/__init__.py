"""The ``iospec`` command line and the report writers."""

__version__ = "0.1.0"
