"""resume_caller.py — the Python caller of test_caller_link_loss.py: one call through the Python
SDK's Client whose connection the test breaks, reported as JSON lines on stdout.

    python resume_caller.py ADDRESS items N DELAY_MS   # count: each item as {"item": i} as it comes
    python resume_caller.py ADDRESS small MS           # sleep, resumable: {"progress": step} as it comes

Last line: {"items": n, "outputs": {...} | null, "error": {"code": ..., "message": ...} | null}.
Exit status 0 whatever the call's outcome.
"""
from __future__ import annotations

import json
import sys

import muster


def say(obj) -> None:
    print(json.dumps(obj), flush=True)


def main() -> None:
    address, mode = sys.argv[1:3]
    items, outputs, error = 0, None, None
    with muster.Client(address, connect_timeout=10.0) as client:
        try:
            if mode == "items":
                n, delay = int(sys.argv[3]), int(sys.argv[4])
                with client.stream("count", {"n": n, "delay_ms": delay}, timeout_ms=120_000) as s:
                    for item in s:
                        say({"item": item["i"]})
                        items += 1
                    outputs = s.result()
            else:
                outputs = client.call("sleep", {"ms": int(sys.argv[3])}, timeout_ms=60_000,
                                      progress=lambda step, total, message: say({"progress": step}),
                                      resumable=True)
        except muster.MusterError as e:
            error = {"code": e.code_name, "message": e.message}
    say({"items": items, "outputs": outputs, "error": error})


if __name__ == "__main__":
    main()
