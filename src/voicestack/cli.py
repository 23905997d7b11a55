"""``voicestack``: run the local stack; manage models; generate configuration docs."""

from __future__ import annotations

import os

import typer

from stt_broker.cli import models_app
from stt_broker.cli import serve as serve_stt
from voicestack import configdocs

app = typer.Typer(help="voicestack: a self-hosted speech stack", no_args_is_help=True, add_completion=False)
app.add_typer(models_app, name="models")
config_app = typer.Typer(help="Configuration reference", no_args_is_help=True)
app.add_typer(config_app, name="config")


@app.command()
def up() -> None:
    """Start the local stack (today: the STT broker on the bundled model) until Ctrl-C."""
    # A person is watching this terminal: readable lines unless configured otherwise.
    os.environ.setdefault("STT_LOG_FORMAT", "text")
    serve_stt(host=None, port=None)


@config_app.command("docs")
def config_docs() -> None:
    """Print docs/configuration.md."""
    typer.echo(configdocs.render_markdown(), nl=False)


@config_app.command("env")
def config_env() -> None:
    """Print .env.example."""
    typer.echo(configdocs.render_env_example(), nl=False)


if __name__ == "__main__":
    app()
