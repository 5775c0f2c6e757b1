"""Run the vpagent CLI with an audit hook that records every socket connect and name lookup.

Usage: python tests/netwatch.py LOG_FILE vpagent-args...
Each recorded event is one JSON line: {"event": ..., "address": ...}.
"""

from __future__ import annotations

import json
import sys

WATCHED = {"socket.connect", "socket.getaddrinfo", "socket.gethostbyname", "socket.sendto"}


def main() -> None:
    log_path, args = sys.argv[1], sys.argv[2:]
    log = open(log_path, "w", encoding="utf-8")  # noqa: SIM115  (open for the process's life)

    def hook(event: str, event_args: tuple) -> None:
        if event in WATCHED:
            address = (
                event_args[1] if event in ("socket.connect", "socket.sendto") else event_args[0]
            )
            log.write(json.dumps({"event": event, "address": repr(address)}) + "\n")
            log.flush()

    sys.addaudithook(hook)
    from vpagent.cli import app

    sys.argv = ["vpagent", *args]
    app()


if __name__ == "__main__":
    main()
