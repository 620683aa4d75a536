"""The ``docker-credential-NAME`` protocol: credentials kept by an OS keychain or a cloud helper.

docker, podman and skopeo all hand secrets to these helpers instead of writing them into
config.json; speaking the same protocol (an action as argument, the server URL or a JSON
record on stdin, JSON on stdout) lets kubenb read and write the very same entries. A helper's
own output is quoted in errors only with the secret redacted, since a badly written helper may
echo what it was given.
"""

from __future__ import annotations

import json
import shutil
import subprocess
from typing import TYPE_CHECKING

from kubenb.errors import RegistryError

if TYPE_CHECKING:
    from kubenb.registry.credentials import Credentials

__all__ = ["erase", "get", "store"]

PREFIX = "docker-credential-"
#: What every helper says (in one spelling or another) when it holds nothing for a server.
NOT_FOUND = "credentials not found"
TIMEOUT = 60.0
MAX_QUOTED = 200


def get(helper: str, server: str) -> tuple[str, str] | None:
    """(username, secret) the helper keeps for ``server``, or None when it keeps none."""
    result = _run(helper, "get", server)
    if result.returncode != 0:
        if _not_found(result):
            return None
        raise _failure(helper, "get the credentials of", server, result)
    try:
        record = json.loads(result.stdout)
        username, secret = record.get("Username", ""), record.get("Secret", "")
    except (ValueError, AttributeError):
        raise _error(helper, "get the credentials of", server, "it did not answer JSON") from None
    if not isinstance(username, str) or not isinstance(secret, str):
        raise _error(helper, "get the credentials of", server, "Username and Secret must be strings")
    return (username, secret) if secret else None


def store(helper: str, server: str, credentials: Credentials) -> None:
    """Hand ``credentials`` for ``server`` to the helper."""
    record = {"ServerURL": server, "Username": credentials.username, "Secret": credentials.password}
    result = _run(helper, "store", json.dumps(record))
    if result.returncode != 0:
        raise _failure(helper, "store the credentials of", server, result, secret=credentials.password)


def erase(helper: str, server: str) -> bool:
    """Make the helper forget ``server``; False when it had nothing for it."""
    result = _run(helper, "erase", server)
    if result.returncode == 0:
        return True
    if _not_found(result):
        return False
    raise _failure(helper, "erase the credentials of", server, result)


def _run(helper: str, action: str, stdin: str) -> subprocess.CompletedProcess[str]:
    binary = shutil.which(PREFIX + helper)
    if binary is None:
        raise RegistryError(
            f"credential helper {PREFIX}{helper} is not on PATH",
            hint="install it, or remove credsStore/credHelpers from the docker config file",
        )
    try:
        return subprocess.run(
            [binary, action], input=stdin, capture_output=True, text=True, timeout=TIMEOUT, check=False
        )
    except (OSError, subprocess.SubprocessError) as error:
        raise RegistryError(f"credential helper {PREFIX}{helper} could not run: {type(error).__name__}") from None


def _not_found(result: subprocess.CompletedProcess[str]) -> bool:
    return NOT_FOUND in (result.stdout + result.stderr).lower()


def _failure(
    helper: str, action: str, server: str, result: subprocess.CompletedProcess[str], *, secret: str = ""
) -> RegistryError:
    said = (result.stderr.strip() or result.stdout.strip()).splitlines()
    text = said[0][:MAX_QUOTED] if said else f"exit status {result.returncode}"
    if secret:
        text = text.replace(secret, "***")
    return _error(helper, action, server, text)


def _error(helper: str, action: str, server: str, reason: str) -> RegistryError:
    return RegistryError(
        f"credential helper {PREFIX}{helper} could not {action} {server}: {reason}",
        hint="check the helper, or run kubenb login again",
    )
