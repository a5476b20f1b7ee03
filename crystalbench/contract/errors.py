"""Exceptions the CLI turns into one-line messages instead of tracebacks."""

from __future__ import annotations


class CrystalbenchError(Exception):
    """Base class: a user-facing problem whose message names the culprit."""


class UnknownNameError(CrystalbenchError):
    """A model, task, descriptor set or protocol name that no plugin provides."""


class DataUnavailableError(CrystalbenchError):
    """A task's data is not on this machine; the message says how to get it."""


class BadInputError(CrystalbenchError):
    """Malformed user data (bad CIF, NaN targets, empty file...)."""


class PluginError(CrystalbenchError):
    """A plugin broke a contract (bad return value, duplicate name)."""
