"""gunicorn, embedded, so that ``tend web`` is the production entry point too."""

from __future__ import annotations

from typing import Any

from gunicorn.app.base import BaseApplication


class TendApplication(BaseApplication):  # type: ignore[misc]
    def __init__(self, options: dict[str, Any]) -> None:
        self.options = options
        super().__init__()

    def load_config(self) -> None:
        for key, value in self.options.items():
            self.cfg.set(key, value)

    def load(self) -> Any:
        from handlers.app import create_app

        return create_app()


def serve(host: str, port: int, workers: int) -> None:
    TendApplication(
        {"bind": f"{host}:{port}", "workers": workers, "threads": 4, "timeout": 30, "accesslog": None, "forwarded_allow_ips": "127.0.0.1"}
    ).run()
