"""Child-side helper for kata-05's checks (loaded by grader.child in place of the learner's file).

It runs the learner's function with a process() that never returns from its N-th call: it writes
which record it is holding to `hold_file` and then waits, so the check can watch the broker while
the record is "being processed" and SIGKILL the consumer in the middle of processing it. Every
other call goes straight to the recording process() of grader.child.
"""

from __future__ import annotations

import importlib.util
import json
import os
import signal
import sys
import time
from pathlib import Path

HOLD_LIMIT_S = 300.0  # the check kills us long before this; never outlive a forgotten check


def consume_holding(learner: str, function: str, learner_kwargs: dict, hold_at: int, hold_file: str,
                    process, should_stop):
    sys.path.insert(0, str(Path(learner).parent))
    spec = importlib.util.spec_from_file_location("kata05_learner", learner)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    calls = 0

    def process_holding(msg) -> None:
        nonlocal calls
        calls += 1
        if calls == hold_at:
            if hasattr(msg, "partition") and callable(msg.partition):
                held = {"partition": msg.partition(), "offset": msg.offset()}
            else:
                held = {"not_a_message": repr(msg)[:200]}
            tmp = Path(hold_file + ".tmp")
            tmp.write_text(json.dumps(held))
            tmp.replace(hold_file)  # atomic: the check never reads half a file
            deadline = time.monotonic() + HOLD_LIMIT_S
            while time.monotonic() < deadline:
                time.sleep(0.05)
            os.kill(os.getpid(), signal.SIGKILL)
        process(msg)

    return getattr(module, function)(**learner_kwargs, process=process_holding, should_stop=should_stop)
