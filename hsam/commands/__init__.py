"""Subcommands of ``hsam``: each module has ``register(subparsers)`` that adds its parser and sets ``func``."""
