"""Acceptance of discovery on real inputs: the corpus in tests/corpus and a peer's own test suite."""

from __future__ import annotations

from pathlib import Path

import pytest

from kubenb import list_images
from kubenb.errors import DiscoveryError
from tests.support.corpus import context_for, expected_cases, load_expected, peer_cases


@pytest.mark.parametrize("case", expected_cases(), ids=lambda p: p.stem)
def test_corpus_case_gives_exactly_its_images(case: Path, tmp_path: Path) -> None:
    expected = load_expected(case)
    found = list_images(context_for(expected, tmp_path / "context"))
    assert sorted(str(f.image) for f in found.images) == sorted(expected["images"])
    assert sorted(str(f.image) for f in found.test) == sorted(expected["test_hook_images"])
    potential = {str(f.image) for f in found.potential}
    assert {p["image"] for p in expected["potential"]} <= potential
    assert not found.invalid
    for image in found.images:
        for location in image.locations:
            assert location.line is not None and location.line >= 1, location
            assert location.source in ("manifest", "chart")


def test_corpus_has_all_cases() -> None:
    assert len(expected_cases()) == 31
    assert len(peer_cases()) == 15


@pytest.mark.parametrize("case", peer_cases(), ids=lambda p: p.name)
def test_peer_case(case: Path) -> None:
    expected = load_expected(case / "expected.json")
    if expected["error"]:
        with pytest.raises(DiscoveryError) as caught:
            list_images(case)
        assert caught.value.file == "manifests/deployment.yaml"
        assert caught.value.line == 12
        assert "could not find expected ':'" in str(caught.value)
        return
    found = list_images(case)
    assert sorted(str(f.image) for f in found.images) == sorted(expected["images"])
    assert sorted(str(f.image) for f in found.test) == sorted(expected["test_hook_images"])
    assert {p["image"] for p in expected["potential"]} <= {str(f.image) for f in found.potential}
    assert sorted(i.written for i in found.invalid) == sorted(expected["invalid"])
