"""An event sink for tests that keeps what it gets, to assert on the events a user would see."""

from __future__ import annotations

from kubenb.events import Event, Retrying


class Recorder(list[Event]):
    """Every event, in order; ``retries`` the retry notices among them."""

    def __call__(self, event: Event) -> None:
        self.append(event)

    @property
    def retries(self) -> list[Retrying]:
        return [e for e in self if isinstance(e, Retrying)]
