"""Subcommands of ``iospec``; each module exposes ``register(subparsers)``."""
