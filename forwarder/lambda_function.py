"""AWS Lambda between S3 and the RunPod endpoint: one `/run` request per uploaded `ogs/<id>` object.

Configure the S3 bucket's ObjectCreated notification (prefix `ogs/`) to invoke this function, and set:
- RUNPOD_ENDPOINT_URL: e.g. https://api.runpod.ai/v2/<endpoint-id> (`/run` is appended)
- RUNPOD_API_KEY: sent as a Bearer token (leave empty for a local test server)
- JOB_OPTIONS (optional): JSON object merged into every job input, e.g. {"model": "u2netp"}

Standard library only, so the function deploys as a single file.
"""
from __future__ import annotations

import json
import os
import urllib.error
import urllib.request
from urllib.parse import unquote_plus

PREFIX = "ogs/"


def job_inputs(event: dict, options: dict) -> list[dict]:
    """The job input for every ObjectCreated record under ogs/ (keys arrive URL-encoded)."""
    inputs = []
    for record in event.get("Records") or []:
        if not str(record.get("eventName", "ObjectCreated")).startswith("ObjectCreated"):
            continue
        key = unquote_plus(((record.get("s3") or {}).get("object") or {}).get("key", ""))
        if key.startswith(PREFIX) and len(key) > len(PREFIX):
            inputs.append({**options, "id": key[len(PREFIX):]})
    return inputs


def post_job(endpoint: str, api_key: str, job_input: dict, timeout: float = 10.0) -> dict:
    request = urllib.request.Request(
        endpoint.rstrip("/") + "/run",
        data=json.dumps({"input": job_input}).encode(),
        headers={"Content-Type": "application/json", **({"Authorization": f"Bearer {api_key}"} if api_key else {})},
        method="POST",
    )
    with urllib.request.urlopen(request, timeout=timeout) as response:
        return json.loads(response.read() or b"{}")


def lambda_handler(event: dict, context: object = None) -> dict:
    endpoint = os.environ["RUNPOD_ENDPOINT_URL"]
    api_key = os.environ.get("RUNPOD_API_KEY", "")
    options = json.loads(os.environ.get("JOB_OPTIONS") or "{}")
    submitted, failed = [], []
    for job_input in job_inputs(event, options):
        try:
            answer = post_job(endpoint, api_key, job_input)
            submitted.append({"id": job_input["id"], "job": answer.get("id"), "status": answer.get("status")})
        except (urllib.error.URLError, TimeoutError, ValueError) as exc:
            failed.append({"id": job_input["id"], "error": str(exc)})
    if failed and not submitted:
        # Raising makes Lambda retry the asynchronous S3 invocation.
        raise RuntimeError(f"no job could be submitted: {failed}")
    return {"submitted": submitted, "failed": failed}
