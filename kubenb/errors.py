"""The one error tree of kubenb.

Every error a user can cause is a ``KubenbError``: it says what went wrong, where (file and
line when there is one) and what to do about it. Front ends print ``str(error)`` as a single
line and exit non-zero; anything that is not a ``KubenbError`` is a bug and shows a traceback.

Foreign errors (YAML, HTTP, OS) are translated at the boundary where they are caught, so that
no layer above has to know about the libraries below it. Leaves that describe bad *values*
also subclass ``ValueError`` so plain Python callers can catch them the usual way.
"""

from __future__ import annotations

import errno
from pathlib import PurePath

__all__ = [
    "AuthenticationError",
    "BuildError",
    "Cancelled",
    "DiscoveryError",
    "InvalidReferenceError",
    "KubefileError",
    "KubenbError",
    "RegistryError",
    "StoreError",
    "UnsupportedError",
    "is_disk_full",
]


class KubenbError(Exception):
    """Base of every error kubenb raises on purpose.

    ``file`` and ``line`` locate the cause in the user's input; ``hint`` tells the user what to
    do. They are kept apart from the message so front ends can render them (a widget shows the
    hint in its own line) while ``str()`` still gives the one-line form the CLI prints.
    """

    def __init__(
        self,
        message: str,
        *,
        file: str | PurePath | None = None,
        line: int | None = None,
        hint: str | None = None,
    ) -> None:
        self.message = message
        self.file = str(file) if file is not None else None
        self.line = line
        self.hint = hint
        super().__init__(self.__str__())

    @property
    def location(self) -> str:
        """``file:line`` (or the part of it that is known), empty when nothing is."""
        if self.file is None:
            return f"line {self.line}" if self.line is not None else ""
        return f"{self.file}:{self.line}" if self.line is not None else self.file

    def __str__(self) -> str:
        text = f"{self.location}: {self.message}" if self.location else self.message
        return f"{text}; {self.hint}" if self.hint else text


class KubefileError(KubenbError, ValueError):
    """The Kubefile's text is not a valid Kubefile (syntax or meaning)."""


class InvalidReferenceError(KubenbError, ValueError):
    """A string is not a valid container image reference.

    ``reason`` is why, without the reference: callers that already name it (``'x' at FILE:LINE:
    REASON``) use it, so that no message says the reference, or "invalid image reference", twice.
    """

    def __init__(self, message: str, *, reason: str | None = None, file: str | PurePath | None = None,
                 line: int | None = None, hint: str | None = None) -> None:
        self.reason = reason or message
        super().__init__(message, file=file, line=line, hint=hint)


class DiscoveryError(KubenbError):
    """Manifests or charts could not be read, parsed or rendered."""


class RegistryError(KubenbError):
    """A registry could not be reached or answered something kubenb cannot use."""


class AuthenticationError(RegistryError):
    """A registry refused the credentials, or wants some and none are known."""


class StoreError(KubenbError):
    """The local cluster-image store or a registry folder is missing or inconsistent."""


class BuildError(KubenbError):
    """A build step failed (a RUN command, a COPY source, a base image)."""


class Cancelled(KubenbError):
    """The user stopped the work (a Cancel button, Ctrl-C); what was done so far is undone."""


class UnsupportedError(KubenbError):
    """The user asked for something kubenb does not do (yet); the message says what it needs."""


def is_disk_full(error: BaseException) -> bool:
    """True for "no space left on device" and "disk quota exceeded".

    Every layer that writes lets such an error through untranslated: only the caller knows
    which disk and what it was writing, which is what the user needs to hear (not "the layer
    may be damaged" or "cannot store blob").
    """
    return isinstance(error, OSError) and error.errno in (errno.ENOSPC, errno.EDQUOT)
