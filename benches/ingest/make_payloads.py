#!/usr/bin/env python3
"""Request bodies for benches/ingest.sh (written to the folder given as argument).

* `stackpit/NN.env` — 100 distinct error envelopes of about 2.9 KiB (the shape of Stackpit's own
  benchmark: an exception with a stack trace, tags and a request), uncompressed, no event id (so nothing
  is de-duplicated);
* `sdk/00.env` — the real sentry-python exception envelope captured in tests/fixtures/sdk (gzip, as the
  SDK sends it), with its event ids removed for the same reason.
"""
from __future__ import annotations

import base64
import gzip
import json
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]


def stackpit_event(i: int) -> dict:
    frames = [
        {"filename": f"app/module_{i % 7}/handler_{j}.py", "function": f"handle_{j}", "lineno": 10 + j,
         "in_app": j % 2 == 0, "context_line": f"    result = step_{j}(payload)",
         "pre_context": ["def handle(payload):", "    log.debug('start')"], "post_context": ["    return result"]}
        for j in range(8)
    ]
    return {
        "platform": "python", "level": "error", "logger": "bench", "environment": "production",
        "release": f"bench@1.{i % 5}.0", "server_name": "bench-host",
        "tags": {"feature": f"f{i % 10}", "tier": "gold"},
        "exception": {"values": [{"type": f"BenchError{i % 20}", "value": f"failure number {i} in batch",
                                  "mechanism": {"type": "generic", "handled": False},
                                  "stacktrace": {"frames": frames}}]},
        "request": {"url": f"https://example.com/api/items/{i}", "method": "GET",
                    "headers": {"User-Agent": "bench/1.0"}},
        "user": {"id": str(i % 50)},
        "extra": {"batch": i, "note": "x" * 400},
    }


def envelope(event: dict) -> bytes:
    payload = json.dumps(event).encode()
    header = json.dumps({"type": "event", "length": len(payload)}).encode()
    return b"{}\n" + header + b"\n" + payload + b"\n"


def main(out: Path) -> None:
    (out / "stackpit").mkdir(parents=True, exist_ok=True)
    (out / "sdk").mkdir(parents=True, exist_ok=True)
    sizes = []
    for i in range(100):
        body = envelope(stackpit_event(i))
        sizes.append(len(body))
        (out / "stackpit" / f"{i:02}.env").write_bytes(body)
    req = json.loads((ROOT / "tests/fixtures/sdk/python/exception.request.json").read_text())
    raw = gzip.decompress(base64.b64decode(req["body_base64"]))
    lines = raw.split(b"\n")
    header = json.loads(lines[0])
    header.pop("event_id", None)
    items = []
    rest = lines[1:]
    k = 0
    while k < len(rest):
        if not rest[k].strip():
            k += 1
            continue
        item_header = json.loads(rest[k])
        payload = rest[k + 1]
        if item_header.get("type") == "event":
            event = json.loads(payload)
            event.pop("event_id", None)
            payload = json.dumps(event).encode()
            item_header["length"] = len(payload)
        items.append(json.dumps(item_header).encode() + b"\n" + payload)
        k += 2
    body = json.dumps(header).encode() + b"\n" + b"\n".join(items) + b"\n"
    (out / "sdk" / "00.env").write_bytes(gzip.compress(body))
    print(f"stackpit: 100 envelopes, mean {sum(sizes) / len(sizes) / 1024:.1f} KiB; "
          f"sdk: {len(gzip.compress(body))} bytes gzip ({len(body)} decoded)")


if __name__ == "__main__":
    main(Path(sys.argv[1]))
