"""``voicestack``: run the local stack; manage models."""

from __future__ import annotations

import typer
from stt_broker.cli import models_app
from stt_broker.cli import serve as serve_stt

app = typer.Typer(help="voicestack: a self-hosted speech stack", no_args_is_help=True, add_completion=False)
app.add_typer(models_app, name="models")


@app.command()
def up() -> None:
    """Start the local stack (today: the STT broker on the bundled model) until Ctrl-C."""
    serve_stt(host=None, port=None)
