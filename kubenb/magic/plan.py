"""The preview a ``%%kubefile`` cell returns: its instructions and the images a build carries."""

from __future__ import annotations

from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

from kubenb.display import image_list_html, image_list_table, kubefile_html, kubefile_text
from kubenb.engine import BuildOptions, Engine
from kubenb.magic.build import run_build, widget_progress
from kubenb.model import ImageList, Kubefile


@dataclass
class Plan:
    """What a build of a ``%%kubefile`` cell would do: its instructions and its images.

    ``images`` is a DataFrame of the images the build carries with where each was found;
    ``potential`` and ``test`` hold what is shown apart. ``review()`` gives the widget to
    change the choice, ``build()`` builds.
    """

    kubefile: Kubefile
    image_list: ImageList
    options: BuildOptions
    root: Path | None = None
    builder: str = "lite"
    progress: str = "auto"
    _review: Any = field(default=None, repr=False)

    @property
    def images(self) -> Any:
        return self.image_list.to_dataframe(include=("image",))

    @property
    def potential(self) -> Any:
        return self.image_list.to_dataframe(include=("potential",))

    @property
    def test(self) -> Any:
        return self.image_list.to_dataframe(include=("test",))

    @property
    def warnings(self) -> tuple[str, ...]:
        return self.image_list.warnings

    def review(self) -> Any:
        """The image-list review widget of this plan (one per plan, so its ticks persist)."""
        if self._review is None:
            from kubenb.widgets import ImageListReview  # noqa: PLC0415  (ipywidgets only when asked)

            self._review = ImageListReview(self.image_list, self.options.context, engine=Engine(self.root))
        return self._review

    def panel(self) -> Any:
        """A build panel whose Build saves the review's choice first, so the build honours it."""
        from kubenb.widgets import BuildPanel  # noqa: PLC0415

        review = self.review()
        return BuildPanel(self.options, engine=Engine(self.root), builder=self.builder, before_build=review.save)

    def build(self, *, tag: str | None = None, background: bool = False, progress: str | None = None) -> Any:
        """Build now; returns the ClusterImage, or the running BuildPanel with ``background``."""
        options = replace(self.options, tag=tag) if tag else self.options
        return run_build(options, self.root, self.builder, progress or self.progress, background)

    def _repr_html_(self) -> str:
        return kubefile_html(self.kubefile) + image_list_html(self.image_list)

    def __repr__(self) -> str:
        return f"{kubefile_text(self.kubefile)}\n\n{image_list_table(self.image_list)}"

    def _repr_mimebundle_(self, include: Any = None, exclude: Any = None) -> dict[str, Any]:
        """Widgets where a kernel draws them; the static tables stay in the saved notebook."""
        bundle: dict[str, Any] = {"text/plain": repr(self), "text/html": self._repr_html_()}
        if widget_progress(self.progress):
            import ipywidgets  # noqa: PLC0415

            view = ipywidgets.VBox([ipywidgets.HTML(kubefile_html(self.kubefile)), self.review(), self.panel()])
            bundle.update(view._repr_mimebundle_(include=include, exclude=exclude) or {})
            bundle["text/html"] = self._repr_html_()
        return bundle
