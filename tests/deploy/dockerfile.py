"""Reading Dockerfiles without Docker: stages, their instructions and ENV; the workspace they install."""

from __future__ import annotations

import re
import tomllib
from dataclasses import dataclass
from pathlib import Path

from tests.deploy.kit import DOCKERFILE, REPO, Service


@dataclass
class Stage:
    """One ``FROM`` stage of a Dockerfile: its base, name and instructions (continuations joined)."""

    base: str
    name: str | None
    instructions: list[tuple[str, str]]

    def values(self, keyword: str) -> list[str]:
        """The arguments of every instruction named ``keyword`` (``RUN``, ``COPY``, ...)."""
        return [args for kw, args in self.instructions if kw == keyword]

    def env(self) -> dict[str, str]:
        """Its ``ENV`` assignments (``KEY=value`` form)."""
        found: dict[str, str] = {}
        for args in self.values("ENV"):
            for match in re.finditer(r"([A-Za-z_][A-Za-z0-9_]*)=(\"[^\"]*\"|\S*)", args):
                found[match.group(1)] = match.group(2).strip('"')
        return found


def parse_dockerfile(path: Path) -> list[Stage]:
    """Stages of a Dockerfile, comments dropped and line continuations joined."""
    lines: list[str] = []
    pending = ""
    for raw in path.read_text().splitlines():
        stripped = raw.strip()
        if not pending and (not stripped or stripped.startswith("#")):
            continue
        if stripped.startswith("#"):
            continue
        if stripped.endswith("\\"):
            pending += stripped[:-1] + " "
            continue
        lines.append(pending + stripped)
        pending = ""
    stages: list[Stage] = []
    for line in lines:
        keyword, _, args = line.partition(" ")
        keyword = keyword.upper()
        if keyword == "FROM":
            parts = args.split()
            parts = [p for p in parts if not p.startswith("--")]
            name = parts[2] if len(parts) >= 3 and parts[1].upper() == "AS" else None
            stages.append(Stage(parts[0], name, []))
        elif stages:
            stages[-1].instructions.append((keyword, args.strip()))
    return stages


def flattened(stages: list[Stage], name: str) -> Stage:
    """Stage ``name`` as Docker builds it: on the image at the root of its ``FROM`` chain, with the
    instructions of the stages it starts from before its own (so ``env()`` holds what it inherits)."""
    by_name = {stage.name: stage for stage in stages if stage.name}
    stage = by_name[name]
    if stage.base not in by_name:
        return stage
    parent = flattened(stages, stage.base)
    return Stage(parent.base, name, parent.instructions + stage.instructions)


def service_stages(service: Service) -> list[Stage]:
    """The stages a service's targets are built from: the targets, and every stage they start
    ``FROM`` or ``COPY --from``, transitively (in file order; other services' stages left out)."""
    stages = parse_dockerfile(DOCKERFILE)
    by_name = {stage.name: stage for stage in stages if stage.name}
    assert set(service.targets) <= set(by_name), f"the Dockerfile lacks a target of {service.name}"
    wanted: set[str] = set()
    pending = list(service.targets)
    while pending:
        name = pending.pop()
        if name in wanted:
            continue
        wanted.add(name)
        stage = by_name[name]
        parents = [stage.base, *re.findall(r"--from=(\S+)", " ".join(stage.values("COPY")))]
        pending += [parent for parent in parents if parent in by_name]
    return [stage for stage in stages if stage.name in wanted]


def workspace_members() -> list[str]:
    """The uv workspace's member folders, from the root pyproject."""
    members: list[str] = tomllib.loads((REPO / "pyproject.toml").read_text())["tool"]["uv"]["workspace"]["members"]
    return members


def project_scripts(service: Service) -> set[str]:
    """The console scripts a service's pyproject declares."""
    data = tomllib.loads((REPO / service.directory / "pyproject.toml").read_text())
    return set(data["project"].get("scripts", {}))
