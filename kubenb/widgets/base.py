"""What every kubenb widget shares: it *is* an ipywidgets ``VBox``.

A plain object holding a widget shows in JupyterLab as ``<... at 0x...>`` and cannot be put
in a user's own ``VBox([...])``; a ``VBox`` subclass does both, as any stock widget does.
"""

from __future__ import annotations

import ipywidgets as widgets

__all__ = ["Composite"]


class Composite(widgets.VBox):  # type: ignore[misc]
    """A kubenb widget: displayed by JupyterLab as itself, composable like any stock widget.

    Subclasses set ``children`` once; ``widget`` is kept for code written when the widgets
    held their view apart. ``text`` is what a notebook saved without the widget state shows.
    """

    @property
    def widget(self) -> Composite:
        return self

    def text(self) -> str:
        """One line saying what the widget is and where it stands (the ``text/plain`` form)."""
        return type(self).__name__

    def __repr__(self) -> str:
        return self.text()
