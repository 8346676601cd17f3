"""The Python peer for `postflow bench cold-start --python-peer`: a typical Python Lambda that imports
boto3 and builds its DynamoDB client at init, answering the same no-I/O request (401)."""
import json

import boto3

dynamodb = boto3.client("dynamodb")


def handler(event, context):
    return {"statusCode": 401, "headers": {"content-type": "application/json"}, "body": json.dumps({"detail": "missing authorization information"})}
