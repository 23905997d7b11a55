"""Figures the reliability suite measured, for docs/reliability.md.

Each check records what it measured; ``VOICESTACK_FIGURES=path.json`` collects them in one file
(merged across tests), so the table in docs/reliability.md can be refreshed from a run.
"""

from __future__ import annotations

import json
import os
import threading
from pathlib import Path
from typing import Any

_LOCK = threading.Lock()


def record(check: str, subject: str, figures: dict[str, Any]) -> None:
    """Keep ``figures`` of ``check`` on ``subject`` (printed always; saved when VOICESTACK_FIGURES is set)."""
    print(f"[figures] {check} {subject}: {json.dumps(figures)}")
    target = os.environ.get("VOICESTACK_FIGURES")
    if not target:
        return
    path = Path(target)
    with _LOCK:
        data: dict[str, Any] = json.loads(path.read_text()) if path.is_file() else {}
        data.setdefault(check, {})[subject] = figures
        path.write_text(json.dumps(data, indent=2, sort_keys=True) + "\n")
