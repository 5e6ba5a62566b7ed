"""The webhook receiver as a team would write it with Python, Powertools for AWS Lambda and boto3:
the peer `cargo xtask bench cold-start` measures ours against (issue 19). It does what ours does
per webhook: the shared-secret header compared in constant time, a body size limit, the envelope's
`id` and `type` checked, the work message sent to SQS, a log line and two EMF metrics, and a 202
with an empty body. Run by `awslambdaric` under the bench's Runtime API emulator, with the same
environment as ours (QUEUE_URL, WEBHOOK_AUTH_HEADER, WEBHOOK_AUTH_VALUE, AWS_ENDPOINT_URL,
AWS_CA_BUNDLE).

Pinned in xtask/src/bench.rs (POWERTOOLS_PEER): awslambdaric, aws-lambda-powertools, boto3.
"""

import hmac
import json
import os
import time

import boto3
from aws_lambda_powertools import Logger, Metrics
from aws_lambda_powertools.event_handler import APIGatewayHttpResolver, Response
from aws_lambda_powertools.metrics import MetricUnit

MAX_BODY_BYTES = 1024 * 1024

logger = Logger(service="webhook-receiver")
metrics = Metrics(namespace="ClaimsGateway", service="webhook-receiver")
app = APIGatewayHttpResolver()
sqs = boto3.client("sqs")
QUEUE_URL = os.environ["QUEUE_URL"]
HEADER = os.environ.get("WEBHOOK_AUTH_HEADER", "x-hicaps-webhook-key").lower()
SECRETS = [value.encode() for value in os.environ["WEBHOOK_AUTH_VALUE"].split(",") if value]


def problem(status, title, invalid=None):
    body = {"type": "about:blank", "title": title}
    if invalid:
        body["invalidParams"] = invalid
    return Response(status_code=status, content_type="application/json", body=json.dumps(body))


@app.post("/hicaps/webhooks")
def receive():
    started = time.monotonic()
    presented = (app.current_event.headers or {}).get(HEADER, "").encode()
    matched = False
    for secret in SECRETS:
        matched |= hmac.compare_digest(presented, secret)
    if not matched:
        return problem(401, "Missing or invalid webhook credentials.")
    body = app.current_event.body or ""
    if len(body.encode()) > MAX_BODY_BYTES:
        return problem(413, "The webhook is too large.")
    try:
        envelope = json.loads(body)
    except ValueError:
        return problem(400, "The body is not JSON.", [{"name": "body", "reason": "The body must be JSON."}])
    webhook_id, kind = envelope.get("id"), envelope.get("type")
    if not isinstance(webhook_id, str) or not webhook_id or not isinstance(kind, str) or not kind:
        return problem(400, "Invalid webhook.", [{"name": "id", "reason": "'id' and 'type' are required."}])
    message = '{"kind":"webhook","receivedAt":%d,"webhook":%s}' % (int(time.time() * 1000), body)
    sqs.send_message(QueueUrl=QUEUE_URL, MessageBody=message)
    logger.info("webhook accepted", extra={"webhook_id": webhook_id, "webhook_type": kind})
    metrics.add_dimension(name="Type", value=kind)
    metrics.add_metric(name="WebhookReceived", unit=MetricUnit.Count, value=1)
    metrics.add_metric(name="AckLatency", unit=MetricUnit.Milliseconds, value=(time.monotonic() - started) * 1000)
    return Response(status_code=202, body="")


@metrics.log_metrics
def handler(event, context):
    return app.resolve(event, context)
