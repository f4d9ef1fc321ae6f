"""Measurements of the suite (not tests): they write figures, they do not judge them."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any


def emit(figures: dict[str, Any], out: Path | None) -> int:
    """Print ``figures`` as JSON, and write them to ``out`` when given."""
    text = json.dumps(figures, indent=2)
    if out is not None:
        out.write_text(text + "\n")
    print(text)
    return 0
