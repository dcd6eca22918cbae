"""What every `tend` command module shares: one-line errors and a bound runtime.

Kept apart from ``handlers/cli.py`` so command modules can import it without
importing the group that imports them.
"""

from __future__ import annotations

from collections.abc import Callable
from functools import wraps
from typing import Any, TypeVar

import click

from plugin import admin, config
from plugin.rules import RulesError
from plugin.runtime import Runtime, bind

F = TypeVar("F", bound=Callable[..., Any])


def one_line_errors(func: F) -> F:
    """Turn the errors a user can cause into one line on stderr and exit status 1."""

    @wraps(func)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        try:
            return func(*args, **kwargs)
        except (config.ConfigError, admin.AdminError, RulesError) as err:
            raise click.ClickException(str(err)) from None

    return wrapper  # type: ignore[return-value]


def runtime(production: bool = False) -> Runtime:
    rt = Runtime.build(config.load(production=production))
    bind(rt)
    return rt
