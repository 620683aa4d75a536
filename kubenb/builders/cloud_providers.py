"""Which clouds ``--cloud`` knows, and how each one's Libcloud driver gets its credentials.

Credentials come only from the provider's usual environment variables, read when the build
starts and handed straight to the driver: kubenb never prints, logs or writes them, and every
error text coming back from a driver is scrubbed of their values before anyone sees it. A
missing variable is named (never its value). Tests register their own provider (Libcloud's
dummy driver) through :func:`register_provider`.
"""

from __future__ import annotations

import json
import os
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

from kubenb.errors import BuildError

__all__ = ["PROVIDERS", "CloudProvider", "register_provider", "scrub", "ssh_key_auth"]

Factory = Callable[[Mapping[str, str], "str | None"], Any]  # (environment, region) -> a Libcloud NodeDriver
#: (public key, login user) -> the create_node arguments that install the key on the machine
KeyArguments = Callable[[str, str], dict[str, Any]]


def ssh_key_auth(public_key: str, user: str) -> dict[str, Any]:
    """Libcloud's generic way (``auth=NodeAuthSSHKey``): EC2 imports it as a key pair, Azure
    installs it for the login user."""
    from libcloud.compute.base import NodeAuthSSHKey  # noqa: PLC0415  (loaded with the driver)

    return {"auth": NodeAuthSSHKey(public_key)}


def _gce_key(public_key: str, user: str) -> dict[str, Any]:
    """GCE takes login keys as instance metadata (``ssh-keys``: ``user:key``)."""
    return {"ex_metadata": {"items": [{"key": "ssh-keys", "value": f"{user}:{public_key}"}]}}


def _azure_key(public_key: str, user: str) -> dict[str, Any]:
    return {**ssh_key_auth(public_key, user), "ex_user_name": user}


@dataclass(frozen=True)
class CloudProvider:
    """A ``--cloud`` name: the variables its driver needs and how the driver is made from them."""

    name: str
    variables: tuple[str, ...]  # all required; named in the error when one is missing
    factory: Factory
    secrets: tuple[str, ...] = ()  # whose values are scrubbed from driver errors (besides ``variables``)
    key_arguments: KeyArguments | None = None  # None: the image must already let the key in

    def driver(self, region: str | None, environ: Mapping[str, str] | None = None) -> Any:
        env = os.environ if environ is None else environ
        missing = [name for name in self.variables if not env.get(name)]
        if missing:
            raise BuildError(f"--cloud {self.name} needs the environment variable{'s' * (len(missing) > 1)} "
                             f"{', '.join(missing)}", hint="set them in the shell that runs kubenb (never on the "
                             "command line: kubenb reads credentials only from the environment)")
        return self.factory(env, region)

    def secret_values(self, environ: Mapping[str, str] | None = None) -> list[str]:
        env = os.environ if environ is None else environ
        return [env[name] for name in (*self.variables, *self.secrets) if env.get(name)]


def scrub(text: str, secrets: list[str]) -> str:
    """``text`` with every credential value replaced by ``***`` (longest first)."""
    for secret in sorted(secrets, key=len, reverse=True):
        if len(secret) >= 4:
            text = text.replace(secret, "***")
    return text


def _libcloud(provider: str) -> Any:
    from libcloud.compute.providers import get_driver  # noqa: PLC0415  (libcloud loads slowly: only for --cloud)

    return get_driver(provider)


def _ecs(env: Mapping[str, str], region: str | None) -> Any:
    return _libcloud("aliyun_ecs")(env["ALIBABA_CLOUD_ACCESS_KEY_ID"], env["ALIBABA_CLOUD_ACCESS_KEY_SECRET"],
                                   region=region or "cn-hangzhou")


def _ec2(env: Mapping[str, str], region: str | None) -> Any:
    return _libcloud("ec2")(env["AWS_ACCESS_KEY_ID"], env["AWS_SECRET_ACCESS_KEY"],
                            token=env.get("AWS_SESSION_TOKEN"), region=region or "us-east-1")


def _gce(env: Mapping[str, str], region: str | None) -> Any:
    """A service account's JSON key file, as Google's tools name it; ``--region`` is the zone."""
    path = env["GOOGLE_APPLICATION_CREDENTIALS"]
    try:
        with open(path, encoding="utf-8") as file:
            account = json.load(file)
        email = account["client_email"]
    except (OSError, ValueError, KeyError, TypeError):
        raise BuildError("GOOGLE_APPLICATION_CREDENTIALS does not name a readable service account key file",
                         hint="point it at the JSON key of a service account") from None
    project = env.get("GOOGLE_CLOUD_PROJECT") or account.get("project_id")
    return _libcloud("gce")(email, path, datacenter=region, project=project)


def _azure(env: Mapping[str, str], region: str | None) -> Any:
    return _libcloud("azure_arm")(env["AZURE_TENANT_ID"], env["AZURE_SUBSCRIPTION_ID"],
                                  key=env["AZURE_CLIENT_ID"], secret=env["AZURE_CLIENT_SECRET"], region=region)


def _openstack(env: Mapping[str, str], region: str | None) -> Any:
    return _libcloud("openstack")(
        env["OS_USERNAME"], env["OS_PASSWORD"], ex_force_auth_url=env["OS_AUTH_URL"],
        ex_force_auth_version="3.x_password", ex_tenant_name=env["OS_PROJECT_NAME"],
        ex_domain_name=env.get("OS_USER_DOMAIN_NAME", "Default"),
        ex_force_service_region=region or env.get("OS_REGION_NAME"),
    )


PROVIDERS: dict[str, CloudProvider] = {
    provider.name: provider for provider in (
        CloudProvider("aliyun_ecs", ("ALIBABA_CLOUD_ACCESS_KEY_ID", "ALIBABA_CLOUD_ACCESS_KEY_SECRET"), _ecs),
        CloudProvider("ec2", ("AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY"), _ec2, secrets=("AWS_SESSION_TOKEN",),
                      key_arguments=ssh_key_auth),
        CloudProvider("gce", ("GOOGLE_APPLICATION_CREDENTIALS",), _gce, key_arguments=_gce_key),
        CloudProvider("azure_arm", ("AZURE_TENANT_ID", "AZURE_SUBSCRIPTION_ID", "AZURE_CLIENT_ID",
                                    "AZURE_CLIENT_SECRET"), _azure, key_arguments=_azure_key),
        CloudProvider("openstack", ("OS_AUTH_URL", "OS_USERNAME", "OS_PASSWORD", "OS_PROJECT_NAME"), _openstack),
    )
}


def register_provider(provider: CloudProvider) -> Callable[[], None]:
    """Make ``--cloud provider.name`` known; returns the function that forgets it again."""
    previous = PROVIDERS.get(provider.name)
    PROVIDERS[provider.name] = provider

    def forget() -> None:
        if previous is None:
            PROVIDERS.pop(provider.name, None)
        else:
            PROVIDERS[provider.name] = previous

    return forget
