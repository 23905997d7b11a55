"""What the deployment tests share: the service table, compose loading and validation.

No Docker engine runs here, so the compose files are checked the ways that need none:
Debian's ``docker-compose`` (1.29) parses and validates them (``config -q``), the
compose-spec JSON schema (vendored under ``schemas/``) checks them more strictly, and the
tests below read the result for what the stack needs (health checks, networks, volumes).
"""

from __future__ import annotations

import importlib
import json
import os
import re
import shutil
import subprocess
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml
from pydantic_settings import BaseSettings

from voicestack.configdocs import env_names

REPO = Path(__file__).resolve().parents[2]
DEPLOY = REPO / "deploy"
DOCKERFILE = REPO / "Dockerfile"
"""Every image's Dockerfile: one target per image, the shared stages written once."""
COMPOSE_FILE = DEPLOY / "docker-compose.yml"
CPU_OVERRIDE = DEPLOY / "docker-compose.cpu.yml"
WYOMING_OVERRIDE = DEPLOY / "docker-compose.wyoming.yml"
SCHEMA = Path(__file__).parent / "schemas" / "compose-spec.json"


@dataclass(frozen=True)
class Service:
    """One voicestack service as the deployment files name it."""

    name: str
    """Compose service name (also the Prometheus job and the MQTT bridge's health name)."""
    package: str
    """Distribution name in its pyproject (``uv sync --package``)."""
    directory: str
    settings: str
    """``module:Class`` of its settings."""
    namespace: str
    """Prefix of its Prometheus metrics."""
    image: str
    """Image name without registry and tag."""
    ready_path: str = "/readyz"
    """What health checks and readiness probes ask. The bridge's ``/readyz`` means "connected to
    MQTT", yet it must keep taking events into its outbox while the broker is away: ``/healthz``."""
    variants: tuple[str, ...] = ()
    """Image variants (``cpu``, ``cuda``), each its own Dockerfile target; none: one image."""

    @property
    def targets(self) -> tuple[str, ...]:
        """The Dockerfile targets of its images (``gateway``; ``stt-broker-cpu``, ``stt-broker-cuda``)."""
        return tuple(f"{self.image}-{v}" for v in self.variants) or (self.image,)

    @property
    def source(self) -> Path:
        """Its import package's folder."""
        return REPO / self.directory / "src" / self.settings.partition(".")[0]

    def settings_class(self) -> type[BaseSettings]:
        """Its settings class, imported."""
        module, _, name = self.settings.partition(":")
        cls: type[BaseSettings] = getattr(importlib.import_module(module), name)
        return cls

    def env_prefix(self) -> str:
        """Its settings' environment prefix (``STT_``)."""
        return str(self.settings_class().model_config.get("env_prefix", ""))

    def env_names(self) -> set[str]:
        """Every environment variable its settings read, legacy spellings included."""
        cls = self.settings_class()
        return {name for field in cls.model_fields for name in env_names(cls, field)}

    def default_port(self) -> int:
        """The port its settings listen on by default."""
        port: int = self.settings_class().model_fields["port"].default
        return port


SERVICES = (
    Service("gateway", "gateway", "services/gateway", "gateway.settings:GatewaySettings", "gateway", "gateway"),
    Service(
        "stt_broker",
        "stt-broker",
        "services/stt_broker",
        "stt_broker.settings:SttSettings",
        "stt",
        "stt-broker",
        variants=("cpu", "cuda"),
    ),
    Service(
        "tts_broker",
        "tts-broker",
        "services/tts_broker",
        "tts_broker.settings:TtsSettings",
        "tts",
        "tts-broker",
        variants=("cpu", "cuda"),
    ),
    Service(
        "mqtt_bridge",
        "mqtt-bridge",
        "services/mqtt_bridge",
        "mqtt_bridge.settings:BridgeSettings",
        "mqtt_bridge",
        "mqtt-bridge",
        ready_path="/healthz",
    ),
    Service(
        "conversation",
        "conversation",
        "services/conversation",
        "conversation.settings:ConversationSettings",
        "conversation",
        "conversation",
    ),
)
BY_NAME = {service.name: service for service in SERVICES}
PREFIXES = ("STT_", "SST_", "TTS_", "GATEWAY_", "MQTT_BRIDGE_", "CONVERSATION_")


def service_for_build(build: dict[str, Any]) -> Service | None:
    """The voicestack service a compose ``build`` section builds (our Dockerfile and one of its targets), if any."""
    if Path(build.get("dockerfile", "")) != DOCKERFILE.relative_to(REPO):
        return None
    return next((s for s in SERVICES if build.get("target") in s.targets), None)


def service_for_image(image: str) -> Service | None:
    """The voicestack service an image reference (``registry/voicestack/stt-broker:cuda``) runs."""
    name = image.rsplit("/", 1)[-1].partition(":")[0]
    return next((s for s in SERVICES if s.image == name), None)


def unknown_env_names(service: Service, names: set[str]) -> set[str]:
    """The names among ``names`` its settings do not read (typos, renamed settings)."""
    return names - service.env_names()


# ---- compose files -------------------------------------------------------------------------


class Reset:
    """A ``!reset`` value of a compose override: the key is removed from what it overrides."""


class ComposeLoader(yaml.SafeLoader):  # type: ignore[misc]
    """YAML as Compose reads it: merge keys (PyYAML's), plus the ``!reset`` tag."""


ComposeLoader.add_constructor("!reset", lambda _loader, _node: Reset())


class PlainLoader(yaml.SafeLoader):  # type: ignore[misc]
    """YAML with ``!reset`` read as the value it carries (an override file as the schema sees it)."""


def _plain(loader: yaml.SafeLoader, node: yaml.Node) -> Any:
    if isinstance(node, yaml.MappingNode):
        return loader.construct_mapping(node, deep=True)
    if isinstance(node, yaml.SequenceNode):
        return loader.construct_sequence(node, deep=True)
    return loader.construct_scalar(node)


PlainLoader.add_constructor("!reset", _plain)


def load_yaml(path: Path, *, resets: bool = True) -> Any:
    """A compose (or any) YAML file; ``!reset`` becomes ``Reset`` (or, with ``resets=False``, its value)."""
    return yaml.load(path.read_text(), Loader=ComposeLoader if resets else PlainLoader)


def merge(base: Any, override: Any) -> Any:
    """Compose's merge of an override file, for overrides made of mappings and scalars only.

    Mappings merge key by key, a scalar replaces, ``!reset`` removes. Compose merges
    sequences by rules of their own (ports by target, ...): the override files hold none,
    except the Wyoming one, whose ``ports`` are new and whose ``networks`` are a superset
    of the base's (checked in test_compose), so replacing them is what Compose does.
    """
    if isinstance(override, dict) and isinstance(base, dict):
        merged = dict(base)
        for key, value in override.items():
            if isinstance(value, Reset):
                merged.pop(key, None)
            else:
                merged[key] = merge(base.get(key), value)
        return merged
    return override


def sequences_in(doc: Any, path: str = "") -> list[str]:
    """Where ``doc`` holds a sequence (for ``merge``'s precondition)."""
    if isinstance(doc, list):
        return [path]
    if isinstance(doc, dict):
        return [found for key, value in doc.items() for found in sequences_in(value, f"{path}.{key}")]
    return []


@dataclass(frozen=True)
class Variant:
    """One way to run the stack: the compose files and the profiles turned on."""

    id: str
    files: tuple[Path, ...]
    profiles: tuple[str, ...] = ()

    @property
    def uses_reset(self) -> bool:
        """Whether an override resets keys (``!reset``), which docker-compose 1.29 cannot read."""
        return any("!reset" in path.read_text() for path in self.files)

    def merged(self) -> dict[str, Any]:
        """The compose files merged into one document, every profile's services kept."""
        doc: dict[str, Any] = load_yaml(self.files[0])
        for extra in self.files[1:]:
            doc = merge(doc, load_yaml(extra))
        return doc

    def document(self) -> dict[str, Any]:
        """The merged document as it runs: services outside the active profiles dropped."""
        doc = self.merged()
        doc["services"] = {
            name: svc
            for name, svc in doc.get("services", {}).items()
            if not svc.get("profiles") or set(svc["profiles"]) & set(self.profiles)
        }
        return doc


VARIANTS = (
    Variant("gpu", (COMPOSE_FILE,)),
    Variant("gpu-remote", (COMPOSE_FILE,), ("remote",)),
    Variant("cpu", (COMPOSE_FILE, CPU_OVERRIDE)),
    Variant("cpu-remote", (COMPOSE_FILE, CPU_OVERRIDE), ("remote",)),
    Variant("gpu-wyoming", (COMPOSE_FILE, WYOMING_OVERRIDE)),
    Variant("cpu-wyoming", (COMPOSE_FILE, CPU_OVERRIDE, WYOMING_OVERRIDE)),
)


def docker_compose() -> str:
    """Debian's docker-compose (1.29), which validates files without a Docker engine."""
    binary = shutil.which("docker-compose")
    if binary is None:
        raise RuntimeError(
            "docker-compose is not installed: the test command installs it (Debian package docker-compose)"
        )
    return binary


# docker-compose 1.29 takes a second idle but over a minute on a loaded 2-core machine.
TOOL_TIMEOUT = 300


def compose_config(
    files: list[Path], profiles: tuple[str, ...] = (), *, quiet: bool = False
) -> subprocess.CompletedProcess[str]:
    """``docker-compose config`` in deploy/, with only ``env`` (no shell variables) to interpolate."""
    args = [docker_compose(), "--project-directory", str(DEPLOY)]
    for path in files:
        args += ["-f", str(path)]
    for profile in profiles:
        args += ["--profile", profile]
    args += ["config", *(["-q"] if quiet else [])]
    clean = {"PATH": os.environ.get("PATH", "/usr/bin:/bin"), "HOME": tempfile.gettempdir()}
    return subprocess.run(args, capture_output=True, text=True, env=clean, timeout=TOOL_TIMEOUT, check=False)


def schema_errors(doc: dict[str, Any]) -> list[str]:
    """Violations of the compose-spec JSON schema (draft-07), as ``path: message`` lines.

    jsonschema comes from the test environment when it has it, else from the Python that
    runs Debian's docker-compose, which depends on it.
    """
    schema_text = SCHEMA.read_text()
    try:
        import jsonschema
    except ImportError:
        return _schema_errors_outside(doc)
    validator = jsonschema.Draft7Validator(json.loads(schema_text))
    return sorted(f"{'/'.join(map(str, e.absolute_path))}: {e.message}" for e in validator.iter_errors(doc))


_VALIDATE = """
import json, sys
import jsonschema
schema, doc = json.load(open(sys.argv[1])), json.load(sys.stdin)
errors = sorted("/".join(map(str, e.absolute_path)) + ": " + e.message
                for e in jsonschema.Draft7Validator(schema).iter_errors(doc))
json.dump(errors, sys.stdout)
"""


def _schema_errors_outside(doc: dict[str, Any]) -> list[str]:
    shebang = Path(docker_compose()).read_text(errors="replace").splitlines()[0]
    python = shebang.removeprefix("#!").strip().split()[0]
    result = subprocess.run(
        [python, "-c", _VALIDATE, str(SCHEMA)],
        input=json.dumps(doc),
        capture_output=True,
        text=True,
        timeout=TOOL_TIMEOUT,
        check=False,
    )
    if result.returncode != 0:
        raise RuntimeError(f"schema validation with {python} failed: {result.stderr}")
    errors: list[str] = json.loads(result.stdout)
    return errors


def env_of(service: dict[str, Any]) -> dict[str, str | None]:
    """A compose service's ``environment`` as a mapping (``None``: passed through from outside)."""
    env = service.get("environment") or {}
    if isinstance(env, list):
        pairs = (item.partition("=") for item in env)
        return {name: (value if sep else None) for name, sep, value in pairs}
    return {name: None if value is None else str(value) for name, value in env.items()}


INTERPOLATION = re.compile(r"\$\{([A-Za-z_][A-Za-z0-9_]*)(?::?[-?+][^}]*)?\}|\$([A-Za-z_][A-Za-z0-9_]*)")


def _default(match: re.Match[str]) -> str:
    name = match.group(1)
    if name is None:
        return ""
    body = match.group(0)[2:-1]
    for operator in (":-", "-"):
        if body.startswith(name + operator):
            return body[len(name + operator) :]
    return ""


def with_defaults(value: str) -> str:
    """A compose value interpolated as it is when no variable is set (``${A:-b}`` gives ``b``)."""
    return "$".join(INTERPOLATION.sub(_default, part) for part in value.split("$$"))


def interpolated_names(text: str) -> set[str]:
    """Variables a compose file interpolates (``${NAME:-default}``, ``$NAME``; ``$$`` is a literal $)."""
    return {a or b for a, b in INTERPOLATION.findall(text.replace("$$", ""))}
