"""``voicestack-gateway``: serve the gateway."""

from __future__ import annotations

from typing import Annotated

import typer

from gateway.settings import GatewaySettings

app = typer.Typer(help="voicestack gateway", no_args_is_help=True, add_completion=False)

# WebSocket messages carry base64 audio: a third larger than the upload limit, plus the JSON around it.
_WS_OVERHEAD = 64 * 1024


@app.command()
def serve(
    host: Annotated[str | None, typer.Option(help="Override GATEWAY_HOST")] = None,
    port: Annotated[int | None, typer.Option(help="Override GATEWAY_PORT")] = None,
) -> None:
    """Run the gateway with settings from the environment and .env."""
    from gateway.app import create_app
    from voicestack_common.service import serve as serve_app

    serve_app(
        "gateway",
        GatewaySettings,
        create_app,
        host=host,
        port=port,
        uvicorn_options=lambda s: {"ws_max_size": s.max_upload_bytes * 4 // 3 + _WS_OVERHEAD},
    )


@app.command()
def version() -> None:
    """Print the gateway's version."""
    from gateway import __version__

    typer.echo(__version__)


if __name__ == "__main__":
    app()
