"""Errors qortex raises, as Python exceptions.

Every error the server reports (qortex's own and PostgreSQL's inside qortex's calls) is
raised as a :class:`QortexError` subclass chosen by its SQLSTATE, keeping the SQLSTATE, the
message, the HINT and the DETAIL; the driver's exception (psycopg or asyncpg) is its
``__cause__`` and :attr:`QortexError.driver_error`. Errors that are not the server's (a
connection that cannot be opened, a closed pool) are left as the driver raised them.

The SQLSTATEs are those of docs/errors.md:

=====================================  ===========================================  ===============
class                                  SQLSTATEs                                    also a
=====================================  ===========================================  ===============
:class:`InvalidArgumentError`          22023, 22P02, 22003, 22004, 54000, 54001     ``ValueError``
:class:`DataError`                     22000 (a wrong dimension), other 22xxx       ``ValueError``
:class:`UndefinedObjectError`          42704 (unknown collection), 42P01, 42703     ``LookupError``
:class:`DuplicateObjectError`          42710
:class:`InsufficientPrivilegeError`    42501                                        ``PermissionError``
:class:`FeatureNotSupportedError`      0A000
:class:`ObjectStateError`              55000, 2BP01, 42809, 25006
:class:`QortexError`                   anything else (XX000, 57014 cancel, ...)
=====================================  ===========================================  ===============
"""
from __future__ import annotations

from typing import Optional

__all__ = [
    "QortexError",
    "InvalidArgumentError",
    "DataError",
    "UndefinedObjectError",
    "DuplicateObjectError",
    "InsufficientPrivilegeError",
    "FeatureNotSupportedError",
    "ObjectStateError",
    "from_driver_error",
]


class QortexError(Exception):
    """An error the server raised in a qortex call."""

    def __init__(self, message: str, *, sqlstate: Optional[str] = None,
                 hint: Optional[str] = None, detail: Optional[str] = None,
                 driver_error: Optional[BaseException] = None) -> None:
        super().__init__(message)
        self.message = message
        self.sqlstate = sqlstate
        self.hint = hint
        self.detail = detail
        self.driver_error = driver_error

    def __str__(self) -> str:
        s = f"{self.message}"
        if self.sqlstate:
            s = f"[{self.sqlstate}] {s}"
        if self.detail:
            s += f"\nDETAIL: {self.detail}"
        if self.hint:
            s += f"\nHINT: {self.hint}"
        return s

    def __repr__(self) -> str:
        return f"{type(self).__name__}({self.message!r}, sqlstate={self.sqlstate!r})"


class InvalidArgumentError(QortexError, ValueError):
    """A bad argument: an unknown option or key, a value out of range, a malformed value."""


class DataError(QortexError, ValueError):
    """Data that cannot be used: a query embedding of the wrong dimension, an invalid stored state."""


class UndefinedObjectError(QortexError, LookupError):
    """An unknown collection or job, a dropped table, a missing column."""


class DuplicateObjectError(QortexError):
    """A name that is taken."""


class InsufficientPrivilegeError(QortexError, PermissionError):
    """The role lacks a privilege the call needs."""


class FeatureNotSupportedError(QortexError):
    """What qortex does not do (ingesting into a registered collection, say)."""


class ObjectStateError(QortexError):
    """An object not in the state the call needs (read-only transaction, dependent objects, ...)."""


_BY_SQLSTATE: dict[str, type[QortexError]] = {
    "22023": InvalidArgumentError,
    "22P02": InvalidArgumentError,
    "22003": InvalidArgumentError,
    "22004": InvalidArgumentError,
    "54000": InvalidArgumentError,
    "54001": InvalidArgumentError,
    "22000": DataError,
    "42704": UndefinedObjectError,
    "42P01": UndefinedObjectError,
    "42703": UndefinedObjectError,
    "42883": UndefinedObjectError,  # an undefined function: qortex not installed (or not on the path)
    "42710": DuplicateObjectError,
    "42501": InsufficientPrivilegeError,
    "0A000": FeatureNotSupportedError,
    "55000": ObjectStateError,
    "2BP01": ObjectStateError,
    "42809": ObjectStateError,
    "25006": ObjectStateError,
}


def _class_for(sqlstate: Optional[str]) -> type[QortexError]:
    if sqlstate is None:
        return QortexError
    cls = _BY_SQLSTATE.get(sqlstate)
    if cls is None and sqlstate.startswith("22"):
        cls = DataError
    return cls or QortexError


def from_driver_error(err: BaseException) -> Optional[QortexError]:
    """The :class:`QortexError` for a psycopg or asyncpg error the server raised, else None."""
    mod = type(err).__module__
    if mod.startswith("psycopg"):
        sqlstate = getattr(err, "sqlstate", None)
        if not sqlstate:
            return None
        diag = err.diag  # type: ignore[attr-defined]
        message = diag.message_primary or str(err)
        hint, detail = diag.message_hint, diag.message_detail
    elif mod.startswith("asyncpg"):
        sqlstate = getattr(err, "sqlstate", None)
        if not sqlstate:
            return None
        message = getattr(err, "message", None) or str(err)
        hint, detail = getattr(err, "hint", None), getattr(err, "detail", None)
    else:
        return None
    return _class_for(sqlstate)(message, sqlstate=sqlstate, hint=hint, detail=detail,
                                driver_error=err)
