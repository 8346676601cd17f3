"""Sends an exception, a message and a transaction with the real sentry-sdk to the DSN given as argv[1];
prints the event ids it was given as JSON. Used by tests/real_sdks.rs (through `postflow serve`)."""
import json
import sys

import sentry_sdk

dsn = sys.argv[1]
sentry_sdk.init(dsn=dsn, traces_sample_rate=1.0, release="e2e-python@1.0", environment="e2e", server_name="e2e-host")


def divide(a, b):
    return a / b


ids = {}
try:
    divide(1, 0)
except ZeroDivisionError:
    ids["exception"] = sentry_sdk.capture_exception()
sentry_sdk.set_tag("flow", "e2e")
sentry_sdk.set_user({"id": "42", "email": "jane@example.com"})
ids["message"] = sentry_sdk.capture_message("hello from the python sdk", level="warning")
with sentry_sdk.start_transaction(op="task", name="e2e-python-transaction"):
    with sentry_sdk.start_span(op="db", description="SELECT 1"):
        pass
sentry_sdk.flush(timeout=10)
print(json.dumps(ids))
