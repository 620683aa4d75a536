"""Session fixtures with real parts: docker-registry processes (open and htpasswd) and skopeo.

Every registry is stopped in fixture teardown, which pytest runs even when a test fails.
"""

from __future__ import annotations

import re
import secrets
import shutil
from collections.abc import Iterator
from contextlib import ExitStack
from typing import Any

import pytest

from tests.support.registry import MAKE_HINT, Registry, RegistryFactory
from tests.support.skopeo import Skopeo
from tests.support.tls import TLSFiles, TLSRegistry, make_certificates

AUTH_USER = "kubenb-test"
REGISTRY_FIXTURES = frozenset({"registry", "auth_registry", "any_registry", "registry_factory"})


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    """Mark every test that uses a registry fixture `registry`, for `-m 'not registry'`."""
    for item in items:
        if REGISTRY_FIXTURES & set(getattr(item, "fixturenames", ())):
            item.add_marker(pytest.mark.registry)


@pytest.fixture(scope="session")
def registry(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Registry]:
    """An open registry for the whole session; use unique repository names per test."""
    with Registry(tmp_path_factory.mktemp("registry")) as running:
        yield running


@pytest.fixture(scope="session")
def auth_registry(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Registry]:
    """A registry with htpasswd (bcrypt) auth; user kubenb-test, password new per session."""
    password = secrets.token_urlsafe(24)
    workdir = tmp_path_factory.mktemp("auth-registry")
    with Registry(workdir, username=AUTH_USER, password=password) as running:
        yield running


@pytest.fixture(params=["registry", "auth_registry"])
def any_registry(request: pytest.FixtureRequest) -> Registry:
    """Parametrises a test over the open and the htpasswd registry."""
    running: Registry = request.getfixturevalue(request.param)
    return running


@pytest.fixture
def registry_factory(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RegistryFactory]:
    """Start extra registries for one test, e.g. factory(root=copy, read_only=True).

    Takes the keyword arguments of Registry (root, read_only, username, password, ...);
    all are stopped when the test ends.
    """
    with ExitStack() as stack:

        def start(**kwargs: Any) -> Registry:
            workdir = tmp_path_factory.mktemp("extra-registry")
            return stack.enter_context(Registry(workdir, **kwargs))

        yield start


@pytest.fixture(scope="session")
def skopeo() -> Skopeo:
    """skopeo as an independent client; missing skopeo is a failure, never a skip."""
    binary = shutil.which("skopeo")
    if binary is None:
        pytest.fail(f"skopeo is not installed: {MAKE_HINT}", pytrace=False)
    return Skopeo(binary)


@pytest.fixture
def repo_name(request: pytest.FixtureRequest) -> str:
    """A repository name unique to this test, valid for the distribution grammar."""
    slug = re.sub(r"[^a-z0-9]+", "-", request.node.name.lower()).strip("-")[:60].strip("-")
    return f"test/{slug or 'repo'}-{secrets.token_hex(3)}"


@pytest.fixture(scope="session")
def tls_files(tmp_path_factory: pytest.TempPathFactory) -> TLSFiles:
    return make_certificates(tmp_path_factory.mktemp("tls"))


@pytest.fixture(scope="session")
def tls_registry(tmp_path_factory: pytest.TempPathFactory, tls_files: TLSFiles) -> Iterator[TLSRegistry]:
    with TLSRegistry(tmp_path_factory.mktemp("tls-registry"), tls_files) as running:
        yield running


# -- a real browser on a real JupyterLab (tests/test_browser*.py) ----------------------------------


@pytest.fixture(scope="module")
def browser() -> Iterator[Any]:
    """Debian's Chromium, headless, one per test module (``chromium`` says how it is started)."""
    from tests.support.jupyter import chromium  # noqa: PLC0415  (playwright only for browser tests)

    with chromium() as running:
        yield running


@pytest.fixture
def page(browser: Any, lab: Any) -> Iterator[Any]:
    """A fresh page of ``browser`` for one test, on the JupyterLab the test module starts (its
    own ``lab`` fixture)."""
    context = browser.new_context(viewport={"width": 1280, "height": 1000})
    context.set_default_timeout(60_000)
    opened = context.new_page()
    try:
        yield opened
    finally:
        context.close()
