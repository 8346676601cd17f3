"""Times Relay's normalizer (sentry_relay.processing.StoreNormalizer.normalize_event, what Sentry's
EventManager calls) on the same event payloads as `postflow bench pipeline`.

    python benches/relay_normalize.py PAYLOADS.json ITERATIONS

PAYLOADS.json is a list of {"name", "event"} written by `postflow bench pipeline --relay PYTHON`.
Prints one JSON object: {name: median microseconds per normalize_event call}.
"""
import json
import statistics
import sys
import time
from pathlib import Path

from sentry_relay.processing import StoreNormalizer

# The same configuration as the conformance oracle (Sentry's EventManager settings).
sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "tests" / "fixtures" / "relay"))
from oracle import BASE_CONFIG  # noqa: E402

payloads = json.load(open(sys.argv[1]))
iterations = int(sys.argv[2])
normalizer = StoreNormalizer(**BASE_CONFIG)
out = {}
for p in payloads:
    samples = []
    for _ in range(iterations):
        t0 = time.perf_counter()
        normalizer.normalize_event(dict(p["event"]))
        samples.append((time.perf_counter() - t0) * 1e6)
    out[p["name"]] = statistics.median(samples)
print(json.dumps(out))
