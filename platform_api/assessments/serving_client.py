"""The assessment service (serving/, `coherency serve`) over HTTP, KServe's V1 protocol.

POST {serving_url}/v1/models/{model}:predict with {"instances": [{"scan": {"b64": ...}, "scan_format": ...,
"photo": {"b64": ...}, "camera": {...}, "metadata": {...}}]}; the reply is {"predictions": [assessment]}, an
error {"error": "..."} with its status. The API never imports the serving code: this module is the contract.
"""

from __future__ import annotations

import base64
import logging

import httpx

from platform_api.errors import Invalid, Upstream
from platform_api.settings import Settings

log = logging.getLogger(__name__)

# serving answers a scan it cannot use with 400 (kserve's InvalidInput) and one over its body limit with 413;
# the other 4xx (an unknown model, a content type) mean this API is misconfigured, which is an upstream failure
SCAN_REFUSED = (400, 413, 422)


def predict_url(settings: Settings) -> str:
    return f"{settings.serving_url.rstrip('/')}/v1/models/{settings.serving_model}:predict"


def request_body(scan: bytes, scan_format: str, photo: bytes | None, camera: dict | None, metadata: dict) -> dict:
    """The V1 request for one scan."""
    instance: dict = {"scan": {"b64": base64.b64encode(scan).decode()}, "scan_format": scan_format}
    if photo is not None:
        instance["photo"] = {"b64": base64.b64encode(photo).decode()}
    if camera is not None:
        instance["camera"] = camera
    if metadata:
        instance["metadata"] = metadata
    return {"instances": [instance]}


def assess(settings: Settings, *, scan: bytes, scan_format: str, photo: bytes | None = None,
           camera: dict | None = None, metadata: dict | None = None) -> dict:
    """The service's assessment of one scan; Invalid when it refuses the scan, Upstream when it fails."""
    url = predict_url(settings)
    body = request_body(scan, scan_format, photo, camera, metadata or {})
    try:
        response = httpx.post(url, json=body, timeout=settings.serving_timeout_s)
    except httpx.TimeoutException as e:
        raise Upstream(f"the assessment service did not answer within {settings.serving_timeout_s:g} s") from e
    except httpx.TransportError as e:
        raise Upstream(f"the assessment service at {settings.serving_url} is unreachable "
                       f"({type(e).__name__})") from e
    if response.status_code != 200:
        raise _refusal(response)
    return _assessment(response)


def _refusal(response: httpx.Response) -> Exception:
    message = _error_text(response)
    log.warning("assessment service answered %s", response.status_code)  # the message may quote the metadata
    if response.status_code in SCAN_REFUSED:
        return Invalid(f"the assessment service refused the scan: {message}")
    return Upstream(f"the assessment service failed ({response.status_code}): {message}")


def _error_text(response: httpx.Response) -> str:
    try:
        body = response.json()
    except ValueError:
        body = None
    text = body.get("error") if isinstance(body, dict) and isinstance(body.get("error"), str) else response.text
    return " ".join(text.split())[:500] or response.reason_phrase


def _assessment(response: httpx.Response) -> dict:
    try:
        predictions = response.json()["predictions"]
        result = predictions[0]
    except (ValueError, KeyError, IndexError, TypeError) as e:
        raise Upstream("the assessment service answered without an assessment ({\"predictions\": [...]})") from e
    if not isinstance(result, dict) or len(predictions) != 1:
        raise Upstream("the assessment service answered with something other than one assessment")
    return result
