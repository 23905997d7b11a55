"""``stt-broker``: serve the broker, and manage its models."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer
from rich.console import Console
from rich.progress import BarColumn, DownloadColumn, Progress, TransferSpeedColumn

from stt_broker.catalog import ggml_locator, languages_of, split_quantization
from stt_broker.models import (
    BUNDLED_MODEL_ID,
    MULTILINGUAL_MODEL_ID,
    OFFICIAL_GGML_MODELS,
    ModelError,
    download_ggml,
    prepare_bundled_ggml,
    quantize_model,
)
from stt_broker.settings import SttSettings
from voicestack_common.model_registry import loaded_model_ids

app = typer.Typer(help="voicestack speech-to-text broker", no_args_is_help=True, add_completion=False)
models_app = typer.Typer(help="List, download and prepare Whisper models", no_args_is_help=True)
app.add_typer(models_app, name="models")
err = Console(stderr=True)


@app.command()
def serve(
    host: Annotated[str | None, typer.Option(help="Override STT_HOST")] = None,
    port: Annotated[int | None, typer.Option(help="Override STT_PORT")] = None,
    remote_host: Annotated[
        str | None, typer.Option(help="Forward to a remote server on this host (STT_REMOTE_HOST, REMOTE_SST_HOST)")
    ] = None,
    remote_port: Annotated[
        int | None, typer.Option(help="The remote server's port (STT_REMOTE_PORT, REMOTE_SST_PORT)")
    ] = None,
) -> None:
    """Run the broker with settings from the environment and .env (a remote host or port selects engine=remote)."""
    from stt_broker.app import create_app
    from voicestack_common.service import serve as serve_app

    remote = {"remote_host": remote_host, "remote_port": remote_port}
    # No keep-alive pings on live sessions: a session applying back-pressure stops reading its
    # socket, pongs included, and would be closed for it; STT_LIVE_IDLE_TIMEOUT ends dead ones.
    serve_app(
        "stt-broker",
        SttSettings,
        create_app,
        host=host,
        port=port,
        overrides=remote,
        uvicorn_options=lambda _: {"ws_ping_interval": None},
    )


@models_app.command("list")
def list_models(
    url: Annotated[
        str | None, typer.Option(help="A running broker to ask what is loaded (default: STT_HOST:STT_PORT)")
    ] = None,
) -> None:
    """The catalog (STT_MODELS) and what of it is prepared or loaded, the cache, and what `pull` can download."""
    settings = SttSettings()
    whisper = settings.cache_dir / "whisper"
    loaded = loaded_model_ids(url or f"http://{settings.host}:{settings.port}")
    for model_id in settings.catalog_ids():
        prepared = (whisper / f"ggml-{model_id}.bin").is_file()
        state = "loaded" if model_id in loaded else "prepared" if prepared else "made on first use"
        hears = "English" if languages_of(model_id) == ("en",) else "multilingual"
        typer.echo(f"catalog: {model_id:<16} {hears:<13} {state}")
    default = settings.model if settings.model != "auto" else "auto (English on a small CPU: tiny.en; else base)"
    typer.echo(f"default: {default}")
    cached = sorted(whisper.glob("ggml-*.bin"))
    typer.echo("cached:  " + (", ".join(p.name for p in cached) or "none"))
    typer.echo("official (pull): " + ", ".join(OFFICIAL_GGML_MODELS))


@models_app.command("pull")
def pull(
    name: Annotated[str, typer.Argument(help="e.g. base.en, large-v3-turbo, base.en-q5_1")],
    dest: Annotated[Path | None, typer.Option(help="Directory (default: cache dir)")] = None,
) -> None:
    """Download an official ggml model (needs internet); prints the STT_MODEL_PATH to set."""
    target_dir = dest or SttSettings().cache_dir / "whisper"
    with Progress(
        "[progress.description]{task.description}", BarColumn(), DownloadColumn(), TransferSpeedColumn(), console=err
    ) as progress:
        task = progress.add_task(f"ggml-{name}.bin", total=None)
        try:
            path = download_ggml(
                name, target_dir, progress=lambda done, total: progress.update(task, completed=done, total=total)
            )
        except ModelError as exc:
            progress.stop()
            err.print(f"[red]error:[/red] {exc}")
            raise typer.Exit(1) from None
    typer.echo(f"STT_MODEL_PATH={path}")


@models_app.command("prepare")
def prepare(
    pull: Annotated[
        bool,
        typer.Option(
            "--pull",
            help="Also download the official ggml models STT_MODELS names that are not in the cache "
            "(needs internet; the GPU compose file's init job uses it)",
        ),
    ] = False,
) -> None:
    """Convert tiny.en and base to ggml now, and every other model of STT_MODELS that can be made here
    (quantized copies); the broker otherwise does it on first use. Prints each file."""
    settings = SttSettings()
    for model_id in dict.fromkeys([BUNDLED_MODEL_ID, MULTILINGUAL_MODEL_ID, *settings.catalog_ids()]):
        if pull:
            _pull_if_missing(settings, model_id)
        with err.status(f"preparing Whisper {model_id} (ggml)"):
            try:
                path = ggml_locator(settings, model_id)()
            except ModelError as exc:
                err.print(f"[red]error:[/red] {exc}")
                raise typer.Exit(1) from None
        typer.echo(str(path))


def _pull_if_missing(settings: SttSettings, model_id: str) -> None:
    """Download ``model_id`` (or, for a quantized id whisper.cpp does not publish, its f16 source)."""
    base, _ = split_quantization(model_id)
    if base in (BUNDLED_MODEL_ID, MULTILINGUAL_MODEL_ID):
        return  # bundled: made offline
    name = model_id if model_id in OFFICIAL_GGML_MODELS else base
    if name not in OFFICIAL_GGML_MODELS or (settings.cache_dir / "whisper" / f"ggml-{model_id}.bin").is_file():
        return
    with err.status(f"downloading ggml-{name}.bin"):
        try:
            download_ggml(name, settings.cache_dir / "whisper")
        except ModelError as exc:
            err.print(f"[red]error:[/red] {exc}")
            raise typer.Exit(1) from None


@models_app.command("quantize")
def quantize(
    quantization: Annotated[str, typer.Argument(help="q8_0 or q5_1")],
    source: Annotated[Path | None, typer.Option(help="An f16/f32 ggml file (default: the bundled tiny.en)")] = None,
    output: Annotated[Path | None, typer.Option(help="Target file (default: beside the source)")] = None,
) -> None:
    """Write a q8_0 or q5_1 ggml model, as whisper.cpp's quantize tool does; prints its path."""
    settings = SttSettings()
    with err.status(f"quantizing to {quantization}"):
        try:
            path = quantize_model(source or prepare_bundled_ggml(settings.cache_dir), quantization, output)
        except ModelError as exc:
            err.print(f"[red]error:[/red] {exc}")
            raise typer.Exit(1) from None
    typer.echo(f"STT_MODEL_PATH={path}")


if __name__ == "__main__":
    app()
