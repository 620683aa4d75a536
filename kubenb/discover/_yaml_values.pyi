# The C module kubenb/discover/_yaml_values.c: see its header for what it does and why.
from collections.abc import Callable
from types import NotImplementedType
from typing import Any

def load(text: str, resolve: Callable[[str], object], /) -> tuple[object, Any] | NotImplementedType: ...
def libyaml_version() -> str: ...
