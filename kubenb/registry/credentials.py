"""Registry credentials from docker's ``config.json``, the one credential source of kubenb.

Users already log in with docker, podman or skopeo, and CI systems write docker's file; reading
that file (and the credential helpers it names) means kubenb works with what is there, and
``kubenb login`` writes what those tools read back. The file is ``$REGISTRY_AUTH_FILE``, else
``$DOCKER_CONFIG/config.json``, else ``~/.docker/config.json``.

Writes keep every other setting of the file and are atomic (a 0600 temporary file renamed over
the old one), so a crash never leaves a half-written file and the secret is never readable by
others, not even for a moment. No function here puts a secret in an error message.
"""

from __future__ import annotations

import base64
import binascii
import contextlib
import json
import os
import tempfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from kubenb.errors import RegistryError
from kubenb.hosts import registry_host
from kubenb.registry import credhelpers

__all__ = [
    "HUB_KEY",
    "IDENTITY_TOKEN_USER",
    "Credentials",
    "config_path",
    "erase",
    "lookup",
    "registry_host",
    "server_key",
    "store",
]

#: The key docker uses for Docker Hub in ``auths`` and with credential helpers.
HUB_KEY = "https://index.docker.io/v1/"
#: The user name docker's helpers give for an identity (OAuth refresh) token.
IDENTITY_TOKEN_USER = "<token>"


@dataclass(frozen=True)
class Credentials:
    """A user name and its password (or identity token); the repr never shows the secret."""

    username: str
    password: str = field(repr=False)

    @property
    def is_identity_token(self) -> bool:
        """True when ``password`` is an OAuth refresh token rather than a password."""
        return self.username == IDENTITY_TOKEN_USER




def server_key(registry: str) -> str:
    """The key docker writes for ``registry``: the legacy v1 URL for Docker Hub, else the host."""
    host = registry_host(registry)
    return HUB_KEY if host == "docker.io" else host


def config_path() -> Path:
    """The credentials file in use, whether or not it exists yet."""
    auth_file = os.environ.get("REGISTRY_AUTH_FILE")
    if auth_file:
        return Path(auth_file)
    docker_config = os.environ.get("DOCKER_CONFIG")
    if docker_config:
        return Path(docker_config) / "config.json"
    return Path.home() / ".docker" / "config.json"


def lookup(registry: str) -> Credentials | None:
    """The credentials known for ``registry``, or None: credHelpers, then credsStore, then auths."""
    path = config_path()
    config = _read(path)
    host = registry_host(registry)
    helper = _helper(config, host)
    if helper is not None:
        found = credhelpers.get(helper, server_key(host))
        if found is not None:
            return Credentials(*found)
    return _from_auths(path, config, host)


def store(registry: str, credentials: Credentials) -> Path:
    """Save ``credentials`` for ``registry`` (in its helper when one is configured); return the file."""
    path = config_path()
    config = _read(path)
    host = registry_host(registry)
    helper = _helper(config, host)
    entry: dict[str, str] = {}
    if helper is not None:
        credhelpers.store(helper, server_key(host), credentials)
    else:
        entry["auth"] = _encode(credentials)
    auths = _auths(path, config)
    for key in _keys_for(auths, host):
        del auths[key]  # an older spelling of the same registry must not shadow the new entry
    auths[server_key(host)] = entry
    _write(path, config)
    return path


def erase(registry: str) -> bool:
    """Forget the credentials of ``registry``; False when none were known."""
    path = config_path()
    config = _read(path)
    host = registry_host(registry)
    helper = _helper(config, host)
    erased = credhelpers.erase(helper, server_key(host)) if helper is not None else False
    auths = _auths(path, config)
    keys = _keys_for(auths, host)
    for key in keys:
        erased = erased or bool(auths[key])
        del auths[key]
    if keys:
        _write(path, config)
    return erased


def _read(path: Path) -> dict[str, Any]:
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        return {}
    except OSError as error:
        raise RegistryError(f"cannot read credentials file {path}: {error.strerror}") from None
    try:
        config = json.loads(text) if text.strip() else {}
    except ValueError as error:
        line = getattr(error, "lineno", None)
        raise RegistryError(
            "credentials file is not valid JSON", file=path, line=line, hint="fix or remove it"
        ) from None
    if not isinstance(config, dict):
        raise RegistryError("credentials file must hold a JSON object", file=path, hint="fix or remove it")
    return config


def _auths(path: Path, config: dict[str, Any]) -> dict[str, Any]:
    auths = config.setdefault("auths", {})
    if not isinstance(auths, dict):
        raise RegistryError("'auths' in the credentials file must be an object", file=path, hint="fix it")
    return auths


def _helper(config: dict[str, Any], host: str) -> str | None:
    """The credential helper for ``host``: its credHelpers entry, else the credsStore."""
    helpers = config.get("credHelpers")
    if isinstance(helpers, dict):
        for key, name in helpers.items():
            if registry_host(key) == host and isinstance(name, str) and name:
                return name
    store_name = config.get("credsStore")
    return store_name if isinstance(store_name, str) and store_name else None


def _keys_for(auths: dict[str, Any], host: str) -> list[str]:
    """Every key of ``auths`` that names ``host``, docker's own spelling first."""
    keys = sorted(key for key in auths if registry_host(key) == host)
    exact = server_key(host)
    return sorted(keys, key=lambda key: key != exact)


def _from_auths(path: Path, config: dict[str, Any], host: str) -> Credentials | None:
    auths = config.get("auths")
    if not isinstance(auths, dict):
        return None
    for key in _keys_for(auths, host):
        entry = auths[key]
        found = _decode(path, key, entry) if isinstance(entry, dict) else None
        if found is not None:
            return found
    return None


def _decode(path: Path, key: str, entry: dict[str, Any]) -> Credentials | None:
    """Credentials of one ``auths`` entry: identitytoken, else auth (base64), else username/password."""
    token = entry.get("identitytoken")
    if isinstance(token, str) and token:
        return Credentials(IDENTITY_TOKEN_USER, token)
    auth = entry.get("auth")
    if isinstance(auth, str) and auth:
        return _decode_auth(path, key, auth)
    username, password = entry.get("username"), entry.get("password")
    if isinstance(username, str) and isinstance(password, str) and username and password:
        return Credentials(username, password)
    return None


def _decode_auth(path: Path, key: str, auth: str) -> Credentials:
    try:
        username, sep, password = base64.b64decode(auth, validate=True).decode("utf-8").partition(":")
    except (binascii.Error, UnicodeDecodeError):
        sep = ""
    if not sep:
        raise RegistryError(
            f"the 'auth' of {key} in the credentials file is not base64 of user:password",
            file=path,
            hint=f"run kubenb login {registry_host(key)}",
        )
    return Credentials(username, password)


def _encode(credentials: Credentials) -> str:
    return base64.b64encode(f"{credentials.username}:{credentials.password}".encode()).decode("ascii")


def _write(path: Path, config: dict[str, Any]) -> None:
    """Replace the file atomically with a 0600 copy; a symlinked file is updated where it points."""
    target = path.resolve() if path.is_symlink() else path
    try:
        target.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
        descriptor, temporary = tempfile.mkstemp(prefix=f".{target.name}.", suffix=".tmp", dir=target.parent)
    except OSError as error:
        raise RegistryError(f"cannot write credentials file {path}: {error.strerror}") from None
    try:
        with os.fdopen(descriptor, "w", encoding="utf-8") as file:  # mkstemp made it 0600
            json.dump(config, file, indent="\t")
            file.write("\n")
            file.flush()
            os.fsync(file.fileno())
        os.replace(temporary, target)
    except BaseException as error:
        with contextlib.suppress(OSError):
            os.unlink(temporary)
        if isinstance(error, OSError):
            raise RegistryError(f"cannot write credentials file {path}: {error.strerror}") from None
        raise
