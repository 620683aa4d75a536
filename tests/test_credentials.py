"""docker's config.json as kubenb's one credential source: real files, a real helper process."""

from __future__ import annotations

import base64
import json
import os
import stat
import sys
import textwrap
from pathlib import Path

import pytest

from kubenb.errors import RegistryError
from kubenb.registry.credentials import HUB_KEY, Credentials, config_path, erase, lookup, registry_host, store

SECRET = "s3cret-Pa55:with:colons"


@pytest.fixture
def config(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """An empty DOCKER_CONFIG folder; the file inside it does not exist yet."""
    monkeypatch.delenv("REGISTRY_AUTH_FILE", raising=False)
    monkeypatch.setenv("DOCKER_CONFIG", str(tmp_path / "docker"))
    return tmp_path / "docker" / "config.json"


def write(path: Path, content: dict[str, object]) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(content))


def auth(user: str, password: str) -> str:
    return base64.b64encode(f"{user}:{password}".encode()).decode()


HELPER = textwrap.dedent('''\
    #!{python}
    """A docker-credential helper keeping secrets in a JSON file next to it."""
    import json, pathlib, sys
    store = pathlib.Path(__file__).with_suffix(".json")
    data = json.loads(store.read_text()) if store.exists() else {{}}
    action, given = sys.argv[1], sys.stdin.read()
    if action == "get":
        if given.strip() not in data:
            print("credentials not found in native keychain"); sys.exit(1)
        print(json.dumps(data[given.strip()]))
    elif action == "store":
        record = json.loads(given)
        data[record["ServerURL"]] = {{"ServerURL": record["ServerURL"], "Username": record["Username"],
                                      "Secret": record["Secret"]}}
        store.write_text(json.dumps(data))
    elif action == "erase":
        if data.pop(given.strip(), None) is None:
            print("credentials not found in native keychain"); sys.exit(1)
        store.write_text(json.dumps(data))
    else:
        print("unknown action " + action, file=sys.stderr); sys.exit(2)
''')


@pytest.fixture
def helper(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """`docker-credential-test` on PATH; returns the JSON file where it keeps secrets."""
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    script = bin_dir / "docker-credential-test"
    script.write_text(HELPER.format(python=sys.executable))
    script.chmod(0o755)
    monkeypatch.setenv("PATH", f"{bin_dir}{os.pathsep}{os.environ['PATH']}")
    return bin_dir / "docker-credential-test.json"


# -- where the file is -----------------------------------------------------------------------


def test_config_path_precedence(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("HOME", str(tmp_path / "home"))
    monkeypatch.delenv("REGISTRY_AUTH_FILE", raising=False)
    monkeypatch.delenv("DOCKER_CONFIG", raising=False)
    assert config_path() == tmp_path / "home" / ".docker" / "config.json"
    monkeypatch.setenv("DOCKER_CONFIG", str(tmp_path / "dc"))
    assert config_path() == tmp_path / "dc" / "config.json"
    monkeypatch.setenv("REGISTRY_AUTH_FILE", str(tmp_path / "auth.json"))
    assert config_path() == tmp_path / "auth.json"


def test_registry_auth_file_is_read(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    auth_file = tmp_path / "containers" / "auth.json"
    write(auth_file, {"auths": {"quay.io": {"auth": auth("podman", SECRET)}}})
    monkeypatch.setenv("REGISTRY_AUTH_FILE", str(auth_file))
    monkeypatch.setenv("DOCKER_CONFIG", str(tmp_path / "unused"))
    assert lookup("quay.io") == Credentials("podman", SECRET)


# -- reading auths ---------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("key", "asked"),
    [
        ("registry.example.com", "registry.example.com"),
        ("https://registry.example.com", "registry.example.com"),
        ("http://registry.example.com/v2/", "registry.example.com"),
        ("registry.example.com:5000", "registry.example.com:5000"),
        (HUB_KEY, "docker.io"),
        (HUB_KEY, "index.docker.io"),
        ("docker.io", "docker.io"),
        ("https://index.docker.io/v1/", "registry-1.docker.io"),
    ],
)
def test_lookup_matches_every_spelling_of_a_key(config: Path, key: str, asked: str) -> None:
    write(config, {"auths": {key: {"auth": auth("alice", SECRET)}}})
    assert lookup(asked) == Credentials("alice", SECRET)


def test_lookup_entry_forms(config: Path) -> None:
    write(config, {"auths": {
        "a.example": {"auth": auth("alice", SECRET)},
        "b.example": {"username": "bob", "password": SECRET},
        "c.example": {"identitytoken": "refresh-me", "auth": auth("carol", "")},
        "d.example": {},
    }})
    assert lookup("a.example") == Credentials("alice", SECRET)
    assert lookup("b.example") == Credentials("bob", SECRET)
    token = lookup("c.example")
    assert token is not None and token.is_identity_token and token.password == "refresh-me"
    assert lookup("d.example") is None
    assert lookup("e.example") is None


def test_lookup_without_a_file_is_none(config: Path) -> None:
    assert not config.exists()
    assert lookup("registry.example.com") is None


def test_exact_key_wins_over_other_spellings(config: Path) -> None:
    write(config, {"auths": {"https://r.example": {"auth": auth("old", "x")}, "r.example": {"auth": auth("new", "y")}}})
    assert lookup("r.example") == Credentials("new", "y")


def test_invalid_json_is_a_clear_error_without_content(config: Path) -> None:
    config.parent.mkdir(parents=True)
    config.write_text('{"auths": {"r.example": {"auth": "' + SECRET + '"}\n')
    with pytest.raises(RegistryError, match="not valid JSON") as raised:
        lookup("r.example")
    assert str(config) in str(raised.value)
    assert SECRET not in str(raised.value)


def test_bad_base64_names_the_entry_not_the_secret(config: Path) -> None:
    write(config, {"auths": {"r.example": {"auth": "!!" + SECRET}}})
    with pytest.raises(RegistryError, match=r"r\.example") as raised:
        lookup("r.example")
    assert SECRET not in str(raised.value)
    assert "kubenb login r.example" in str(raised.value)


def test_credentials_repr_hides_the_password() -> None:
    shown = Credentials("alice", SECRET)
    assert SECRET not in repr(shown) and SECRET not in str(shown) and "alice" in repr(shown)


def test_registry_host_normalisation() -> None:
    assert registry_host("https://Quay.IO/v2/") == "quay.io"
    assert registry_host("index.docker.io") == registry_host(HUB_KEY) == "docker.io"
    assert registry_host("127.0.0.1:5000") == "127.0.0.1:5000"


# -- writing ---------------------------------------------------------------------------------


def test_store_creates_the_file_0600_and_reads_back(config: Path) -> None:
    path = store("127.0.0.1:5000", Credentials("alice", SECRET))
    assert path == config
    assert stat.S_IMODE(config.stat().st_mode) == 0o600
    assert stat.S_IMODE(config.parent.stat().st_mode) == 0o700
    assert json.loads(config.read_text())["auths"]["127.0.0.1:5000"] == {"auth": auth("alice", SECRET)}
    assert lookup("127.0.0.1:5000") == Credentials("alice", SECRET)
    assert os.listdir(config.parent) == ["config.json"]  # no temporary file left


def test_store_keeps_every_other_setting(config: Path) -> None:
    original = {
        "auths": {"other.example": {"auth": auth("x", "y"), "email": "x@example.com"}},
        "credHelpers": {"gcr.io": "gcloud"},
        "psFormat": "table {{.ID}}",
        "proxies": {"default": {"httpProxy": "http://proxy:3128"}},
    }
    write(config, original)
    config.chmod(0o644)
    store("r.example", Credentials("alice", SECRET))
    saved = json.loads(config.read_text())
    assert saved["auths"]["other.example"] == original["auths"]["other.example"]  # type: ignore[index]
    assert {k: v for k, v in saved.items() if k != "auths"} == {k: v for k, v in original.items() if k != "auths"}
    assert stat.S_IMODE(config.stat().st_mode) == 0o600


def test_docker_hub_is_stored_under_the_v1_url(config: Path) -> None:
    store("docker.io", Credentials("hubuser", SECRET))
    assert list(json.loads(config.read_text())["auths"]) == [HUB_KEY]
    assert lookup("index.docker.io") == Credentials("hubuser", SECRET)


def test_store_replaces_older_spellings_of_the_same_registry(config: Path) -> None:
    write(config, {"auths": {"https://r.example": {"auth": auth("old", "old")}}})
    store("r.example", Credentials("new", SECRET))
    assert json.loads(config.read_text())["auths"] == {"r.example": {"auth": auth("new", SECRET)}}


def test_a_failed_write_leaves_the_old_file_whole(config: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    write(config, {"auths": {"keep.example": {"auth": auth("k", "k")}}})
    before = config.read_bytes()

    def crash(source: str, target: str) -> None:
        raise OSError(28, "No space left on device")

    monkeypatch.setattr("os.replace", crash)
    with pytest.raises(RegistryError, match="No space left"):
        store("r.example", Credentials("alice", SECRET))
    assert config.read_bytes() == before
    assert os.listdir(config.parent) == ["config.json"]


def test_store_through_a_symlink_updates_the_target(config: Path, tmp_path: Path) -> None:
    target = tmp_path / "real" / "config.json"
    write(target, {"auths": {}})
    config.parent.mkdir(parents=True)
    config.symlink_to(target)
    store("r.example", Credentials("alice", SECRET))
    assert config.is_symlink()
    assert lookup("r.example") == Credentials("alice", SECRET)


def test_erase(config: Path) -> None:
    write(config, {"auths": {"https://r.example": {"auth": auth("a", "b")}, "r.example": {"auth": auth("a", "b")},
                             "other.example": {"auth": auth("c", "d")}}})
    assert erase("r.example") is True
    assert list(json.loads(config.read_text())["auths"]) == ["other.example"]
    assert erase("r.example") is False
    assert lookup("other.example") == Credentials("c", "d")


def test_erase_without_a_file(config: Path) -> None:
    assert erase("r.example") is False
    assert not config.exists()


# -- credential helpers ----------------------------------------------------------------------


def test_creds_store_holds_the_secret_not_the_file(config: Path, helper: Path) -> None:
    write(config, {"credsStore": "test"})
    store("r.example", Credentials("alice", SECRET))
    assert SECRET not in config.read_text()
    assert json.loads(config.read_text())["auths"] == {"r.example": {}}
    assert json.loads(helper.read_text())["r.example"]["Secret"] == SECRET
    assert lookup("r.example") == Credentials("alice", SECRET)
    assert erase("r.example") is True
    assert lookup("r.example") is None
    assert erase("r.example") is False


def test_creds_store_for_docker_hub_uses_the_v1_url(config: Path, helper: Path) -> None:
    write(config, {"credsStore": "test"})
    store("docker.io", Credentials("hubuser", SECRET))
    assert list(json.loads(helper.read_text())) == [HUB_KEY]


def test_cred_helpers_per_registry_win(config: Path, helper: Path) -> None:
    helper.write_text(json.dumps({"r.example": {"Username": "from-helper", "Secret": SECRET}}))
    write(config, {"credHelpers": {"r.example": "test"},
                   "auths": {"r.example": {"auth": auth("from-file", "x")}, "s.example": {"auth": auth("s", "t")}}})
    assert lookup("r.example") == Credentials("from-helper", SECRET)
    assert lookup("s.example") == Credentials("s", "t")


def test_helper_not_found_falls_back_to_auths(config: Path, helper: Path) -> None:
    write(config, {"credsStore": "test", "auths": {"r.example": {"auth": auth("file", "pw")}}})
    assert lookup("r.example") == Credentials("file", "pw")


def test_missing_helper_is_a_clear_error(config: Path) -> None:
    write(config, {"credsStore": "does-not-exist"})
    with pytest.raises(RegistryError, match="docker-credential-does-not-exist is not on PATH"):
        lookup("r.example")


def test_failing_helper_error_redacts_the_secret(config: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    bin_dir = tmp_path / "badbin"
    bin_dir.mkdir()
    script = bin_dir / "docker-credential-echo"
    script.write_text(f"#!{sys.executable}\nimport sys\nprint('cannot keep ' + sys.stdin.read(), file=sys.stderr)\n"
                      "sys.exit(3)\n")
    script.chmod(0o755)
    monkeypatch.setenv("PATH", f"{bin_dir}{os.pathsep}{os.environ['PATH']}")
    write(config, {"credsStore": "echo"})
    with pytest.raises(RegistryError, match="docker-credential-echo could not store") as raised:
        store("r.example", Credentials("alice", SECRET))
    assert SECRET not in str(raised.value)
    assert SECRET not in config.read_text()
