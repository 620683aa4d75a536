"""The login form: a registry login from a notebook without a secret left in the notebook.

A password typed into a cell ends up in the saved ``.ipynb`` and its history; a ``Password``
widget does not, as long as its value is cleared once used. So the form clears it after every
attempt, right or wrong, and its messages never quote it.
"""

from __future__ import annotations

import html
from collections.abc import Sequence
from pathlib import Path

import ipywidgets as widgets

from kubenb.engine import Engine
from kubenb.errors import AuthenticationError, KubenbError
from kubenb.widgets.base import Composite

__all__ = ["LoginForm"]

#: Button and status start where the fields do, under them (past the labels' column).
UNDER_FIELDS = "2px 0 2px calc(var(--jp-widgets-inline-label-width, 80px) + 6px)"
#: What to do after a refusal, said for the form: the CLI's hint ("run kubenb login") is for a terminal.
RETRY = "check the user and the password, then press Log in again"


class LoginForm(Composite):
    """User, password and a Log in button for ``registry``; credentials are checked, then saved."""

    def __init__(self, registry: str, *, username: str = "", insecure: bool = False,
                 ca_files: Sequence[str | Path] = ()) -> None:
        self.registry = registry
        self.engine = Engine(insecure=[registry] if insecure else [], ca_files=ca_files)
        self.user = widgets.Text(value=username, description="User", placeholder="user name")
        self.password = widgets.Password(value="", description="Password")
        self.button = widgets.Button(description="Log in", icon="sign-in", button_style="primary",
                                     layout=widgets.Layout(margin=UNDER_FIELDS))
        self.button.add_class("kubenb-login")
        self.status = widgets.HTML(value=f"Log in to <code>{html.escape(registry)}</code>",
                                   layout=widgets.Layout(margin=UNDER_FIELDS))
        self.status.add_class("kubenb-login-status")
        self.button.on_click(lambda _button: self.login())
        super().__init__([self.user, self.password, self.button, self.status])
        self.add_class("kubenb-login-form")

    def text(self) -> str:
        return f"LoginForm({self.registry})"

    def login(self) -> Path | None:
        """Check and save the credentials; the credentials file, or None when the login failed."""
        user, password = self.user.value, self.password.value
        try:
            path = self.engine.login(self.registry, user, password)
        except KubenbError as error:
            self._say(_redact(_for_the_form(error), password), "error")
            return None
        finally:
            self.password.value = ""
        self._say(f"Logged in to {self.registry} as {user}", "success")
        return path

    def _say(self, text: str, kind: str) -> None:
        """``text`` in the theme's error or success colour (JupyterLab's variables)."""
        self.status.value = html.escape(text)
        self.status.style.text_color = f"var(--jp-{kind}-color1)"


def _for_the_form(error: KubenbError) -> str:
    """The error's one line with a hint that speaks of this form, not of a command to type."""
    where = f"{error.location}: " if error.location else ""
    hint = error.hint or ""
    if isinstance(error, AuthenticationError) or "kubenb login" in hint:
        hint = RETRY
    return f"{where}{error.message}; {hint}" if hint else f"{where}{error.message}"


def _redact(text: str, secret: str) -> str:
    """Belt and braces: no message the form shows may quote the password."""
    return text.replace(secret, "***") if secret else text
