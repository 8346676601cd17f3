"""A minimal Python Lambda runtime loop (what the managed Python runtime's bootstrap does): import the
handler module (boto3 import + client creation happen here, at init), then fetch the next event from
the Runtime API, call the handler and post its result. Used by `postflow bench cold-start --python-peer`."""
import json
import os
import urllib.request

import handler  # noqa: E402  (init: imports boto3 and builds a DynamoDB client)

api = os.environ["AWS_LAMBDA_RUNTIME_API"]
base = f"http://{api}/2018-06-01/runtime/invocation"
while True:
    with urllib.request.urlopen(f"{base}/next") as r:
        request_id = r.headers["Lambda-Runtime-Aws-Request-Id"]
        event = json.loads(r.read())
    result = handler.handler(event, None)
    req = urllib.request.Request(f"{base}/{request_id}/response", data=json.dumps(result).encode(), method="POST")
    urllib.request.urlopen(req).read()
