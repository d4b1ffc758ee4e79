"""Golden files: compare a normalised transcript with its recording, or re-record it.

Set CORTEX_UPDATE_GOLDEN=1 to re-record after a deliberate change, and review the diff.
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any


def assert_golden(path: Path, events: list[dict[str, Any]]) -> None:
    if os.environ.get("CORTEX_UPDATE_GOLDEN") == "1":
        path.write_text(json.dumps(events, ensure_ascii=False, indent=1) + "\n", encoding="utf-8")
    assert events == json.loads(path.read_text(encoding="utf-8"))
