"""What the ``voicestack`` client commands print: the gateway's answers as rich tables."""

from __future__ import annotations

from typing import Any

from rich.markup import escape
from rich.table import Table


def voices_table(body: dict[str, Any]) -> Table:
    """One row per voice: its language (from the broker's ``details``; unknown: blank) and gender."""
    details = {d["id"]: d for d in body.get("details") or [] if isinstance(d, dict) and "id" in d}
    default = body.get("default_voice")
    table = Table(title=f"{len(body.get('voices', []))} voices", box=None)
    for column in ("voice", "code", "language", "gender", "note"):
        table.add_column(column)
    for name in body.get("voices", []):
        info = details.get(name, {})
        notes = ["default"] if name == default else []
        if info.get("available") is False:
            notes.append(f"unavailable: {info.get('reason') or 'no text front end'}")
        language = " ".join(str(v) for v in (info.get("language"), info.get("language_name")) if v)
        table.add_row(
            escape(name),
            escape(str(info.get("lang_code") or "")),
            escape(language),
            escape(str(info.get("gender") or "")),
            escape(", ".join(notes)),
        )
    return table


def health_table(body: dict[str, Any]) -> Table:
    """One row per replica of each broker, then the MQTT bridge and the MQTT broker (as the bridge sees it)."""
    table = Table(title=f"voicestack: {body.get('status', 'unknown')}")
    for column in ("service", "replica", "healthy", "latency ms", "detail"):
        table.add_column(column)
    for label, prefix in (("stt", "sst"), ("tts", "tts")):
        replicas = body.get(f"{prefix}_replicas") or [
            {
                "url": body.get(f"{prefix}_service"),
                "healthy": body.get(f"{prefix}_healthy"),
                "latency_ms": body.get(f"{prefix}_latency_ms"),
            }
        ]
        for replica in replicas:
            latency = replica.get("latency_ms")
            table.add_row(
                label,
                str(replica.get("url") or ""),
                yes_no(replica.get("healthy")),
                "" if latency is None else f"{latency:.0f}",
                str(replica.get("error") or ""),
            )
    if body.get("conversation_service"):
        healthy = body.get("conversation_healthy")
        table.add_row("conversation", str(body["conversation_service"]), yes_no(healthy), "", "")
    bridge = body.get("mqtt_bridge")
    if isinstance(bridge, dict):
        latency = bridge.get("latency_ms")
        table.add_row(
            "mqtt_bridge",
            str(bridge.get("url") or ""),
            yes_no(bridge.get("healthy")),
            "" if latency is None else f"{latency:.0f}",
            str(bridge.get("error") or ""),
        )
        connected = bridge.get("mqtt_connected")
        table.add_row(
            "mqtt_broker",
            f"mqtt://{bridge['mqtt_broker']}" if bridge.get("mqtt_broker") else "",
            "?" if connected is None else yes_no(connected),
            "",
            str(bridge.get("mqtt_error") or ("unknown: the bridge did not answer" if connected is None else "")),
        )
    else:
        detail = "events are off (GATEWAY_EVENTS_URL is empty)"
        table.add_row("mqtt_bridge", "", "-", "", detail)
        table.add_row("mqtt_broker", "", "-", "", detail)
    events = body.get("events")
    if events:
        table.caption = (
            f"events to the MQTT bridge: {events.get('sent', 0)} sent, "
            f"{events.get('pending', 0)} pending, {events.get('dropped', 0)} dropped"
        )
    return table


def yes_no(value: object) -> str:
    return "[green]yes[/green]" if value else "[red]no[/red]"


def models_table(cards: list[dict[str, Any]]) -> Table:
    """One row per model the gateway lists (``GET /v1/models``)."""
    table = Table(box=None)
    for column in ("model", "kind", "loaded", "default", "languages", "owned by"):
        table.add_column(column)
    for card in cards:
        loaded, languages = card.get("loaded"), card.get("languages")
        alias = f" → {card['alias_of']}" if card.get("alias_of") else ""
        shown = ", ".join((languages or [])[:8])
        if languages and len(languages) > 8:
            shown += f" (+{len(languages) - 8})"
        table.add_row(
            escape(f"{card.get('id', '?')}{alias}"),
            escape(str(card.get("kind") or "")),
            "" if loaded is None else yes_no(loaded),
            "yes" if card.get("default") else "",
            escape(shown),
            escape(str(card.get("owned_by") or "")),
        )
    return table
