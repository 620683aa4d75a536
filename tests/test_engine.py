"""``Engine``, the one door: one method per user verb, over a real store and a real registry.

The front ends' own tests (test_cli, test_magic, test_widgets) go through it too; these check
the facade itself: its registry options reach a build, its records are the model's, and its
cancel token stops a build while a copy made for the next build starts fresh.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from kubenb import Engine
from kubenb.engine import BuildOptions
from kubenb.errors import Cancelled
from kubenb.events import Event, ImageStarted
from kubenb.model import ClusterImage
from kubenb.store import Store
from tests.support.oci import push, single_image
from tests.support.registry import Registry
from tests.test_reliability import context_with

#: docs/architecture.md and DESIGN: one method per user verb.
VERBS = ("list_images", "build", "images", "inspect", "tag", "rmi", "save", "load", "push", "pull", "export",
         "save_images", "login", "logout", "check")


def test_the_engine_has_one_method_per_user_verb() -> None:
    missing = [verb for verb in VERBS if not callable(getattr(Engine, verb, None))]
    assert not missing


def test_a_build_goes_through_the_engines_mirror_and_every_store_verb_round_trips(
        registry: Registry, tmp_path: Path, repo_name: str) -> None:
    push(registry, f"{repo_name}/app", "1", single_image(repo_name))
    source = f"mirrored.example/{repo_name}/app:1"  # reachable only through the engine's mirror
    context = context_with(tmp_path, source + "\n")
    events: list[Event] = []
    engine = Engine(tmp_path / "root", mirrors={"mirrored.example": registry.host}, events=events.append)

    assert [str(found.image) for found in engine.list_images(context)] == [source]
    image = engine.build(BuildOptions(tag="app:1", context=context, kubefile=context / "Kubefile"))
    assert isinstance(image, ClusterImage) and list(image.carried_images) == [source]
    assert [event.image for event in events if isinstance(event, ImageStarted)] == [source]

    assert engine.images() == [image]
    assert engine.tag("app:1", "app:2").id == image.id
    assert engine.inspect("app:2")["image"]["id"] == image.id
    engine.save("app:1", tmp_path / "app.tar")
    other = Engine(tmp_path / "other")
    assert [loaded.id for loaded in other.load(tmp_path / "app.tar")] == [image.id]
    engine.export("app:1", tmp_path / "rootfs")
    assert (tmp_path / "rootfs" / "manifests" / "imageList").read_text() == source + "\n"
    destination = f"{registry.host}/{repo_name}/cluster:1"
    assert engine.push("app:1", destination) == image.manifest_digest
    assert Engine(tmp_path / "third").pull(destination).id == image.id
    engine.rmi("app:2")
    assert [stored.name for stored in engine.images()] == ["app:1"]
    saved = engine.save_images(tmp_path / "folder", [source])
    assert [entry.left_out for entry in saved.images] == [False]
    assert engine.check(tmp_path / "folder").ok and other.check().ok


def test_a_cancelled_engine_builds_nothing_and_its_copy_for_the_next_build_starts_fresh(tmp_path: Path) -> None:
    context = context_with(tmp_path, "")
    options = BuildOptions(tag="empty:1", context=context, kubefile=context / "Kubefile")
    engine = Engine(tmp_path / "root")
    engine.cancel()
    with pytest.raises(Cancelled):
        engine.build(options)
    assert Store(tmp_path / "root").images() == []
    fresh = engine.with_events(lambda event: None)
    assert engine.cancel_token.cancelled and not fresh.cancel_token.cancelled
    assert fresh.root == engine.root and fresh.build(options).name == "empty:1"
    assert fresh.check().ok
