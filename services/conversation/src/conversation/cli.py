"""``conversation``: serve the conversation service, or migrate its database."""

from __future__ import annotations

import asyncio
from typing import Annotated

import typer

from conversation.settings import ConversationSettings

app = typer.Typer(help="voicestack conversation service", no_args_is_help=True, add_completion=False)


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


@app.command()
def version() -> None:
    """Print the service's version."""
    from conversation import __version__

    typer.echo(__version__)


if __name__ == "__main__":
    app()
