"""Notebook front ends from stock ipywidgets: image-list review, build panel, login form.

Each is an ipywidgets ``VBox`` (``base.Composite``): JupyterLab shows it as a live widget, and
it goes into a user's own ``VBox`` like any stock widget. They make the same engine calls the
CLI makes; canonical state stays in Python and the widgets are its view.
"""

from __future__ import annotations

from kubenb.widgets.login import LoginForm
from kubenb.widgets.panel import BuildPanel
from kubenb.widgets.review import ImageListReview

__all__ = ["BuildPanel", "ImageListReview", "LoginForm"]
