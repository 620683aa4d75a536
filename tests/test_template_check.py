"""The check for Helm template text under manifests/ finds the first ``{{`` exactly as ``find``
does, also in text full of lone braces (JSON manifests), where it gives up its fast path."""

from __future__ import annotations

from hypothesis import given
from hypothesis import strategies as st

from kubenb.discover.templates import _first_double_brace, helm_template_line


@given(st.text(alphabet="ab{} \n", max_size=400))
def test_the_first_double_brace_is_where_find_puts_it(text: str) -> None:
    assert _first_double_brace(text) == text.find("{{")


def test_a_json_manifest_with_many_braces_and_a_template_is_still_caught() -> None:
    objects = ",".join(f'{{"name": "c{n}", "image": "nginx:1.25"}}' for n in range(500))
    text = '{"kind": "List", "items": [' + objects + '], "x": "{{ .Values.image }}"}\n'
    assert helm_template_line(text) == 1
    assert helm_template_line(text.replace("{{ .Values.image }}", "plain")) == 0
