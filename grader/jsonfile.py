"""The one way the grader writes its JSON state files (progress, cluster control, reusable
broker, validation times): readers see the old file or the new one, never half of one."""

from __future__ import annotations

import json
import os
from pathlib import Path


def write_json_atomic(path: Path, data, indent: int = 1, sort_keys: bool = False) -> None:
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f"{path.name}.{os.getpid()}.tmp")  # per process: concurrent writers never share one
    with open(tmp, "w", encoding="utf-8") as fh:
        json.dump(data, fh, indent=indent, sort_keys=sort_keys)
        fh.flush()
        os.fsync(fh.fileno())
    os.replace(tmp, path)
