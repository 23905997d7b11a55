"""``mqtt-bridge``: serve the bridge, or run the embedded MQTT broker of the local stack."""

from __future__ import annotations

from typing import Annotated

import typer

from mqtt_bridge.settings import BridgeSettings

app = typer.Typer(help="voicestack MQTT bridge", no_args_is_help=True, add_completion=False)


@app.command()
def serve(
    host: Annotated[str | None, typer.Option(help="Override MQTT_BRIDGE_HOST")] = None,
    port: Annotated[int | None, typer.Option(help="Override MQTT_BRIDGE_PORT")] = None,
) -> None:
    """Run the bridge with settings from the environment and .env."""
    from mqtt_bridge.app import create_app
    from voicestack_common.service import serve as serve_app

    serve_app("mqtt-bridge", BridgeSettings, create_app, host=host, port=port)


@app.command()
def broker(
    host: Annotated[str, typer.Option(help="Interface to listen on")] = "127.0.0.1",
    port: Annotated[int, typer.Option(help="TCP port")] = 1883,
    log_level: Annotated[str, typer.Option(help="DEBUG, INFO, WARNING, ERROR")] = "INFO",
    log_format: Annotated[str, typer.Option(help="json or text")] = "text",
) -> None:
    """Run the embedded MQTT broker (amqtt, MQTT 3.1.1, anonymous, in memory) until Ctrl-C."""
    import asyncio

    from mqtt_bridge.broker import serve_broker
    from voicestack_common.logging import configure_logging

    configure_logging("mqtt-broker", log_level.upper(), log_format)
    asyncio.run(serve_broker(host, port))


if __name__ == "__main__":
    app()
