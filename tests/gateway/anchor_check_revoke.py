#!/usr/bin/env python3
"""An agency's case system, in Python with `requests` only, using the gateway's OpenAPI
endpoints: it anchors a land title, waits until it is committed, reads it and its receipt,
records a mortgage on it, revokes it, and sees it revoked.

    anchor_check_revoke.py GATEWAY_URL TOKEN

Exits 0 when every step answered as the OpenAPI document says; prints what it did as JSON.
"""
import hashlib
import json
import sys
import time

import requests


def main(base, token):
    session = requests.Session()
    session.headers["Authorization"] = f"Bearer {token}"

    def call(method, path, body=None, expect=200):
        response = session.request(method, base + path, json=body, timeout=30)
        if response.status_code != expect:
            raise SystemExit(
                f"{method} {path}: HTTP {response.status_code}, expected {expect}: {response.text}"
            )
        return response.json()

    def committed(submission):
        deadline = time.time() + 60
        while time.time() < deadline:
            status = call("GET", f"/v1/submissions/{submission}")
            if status["status"] == "committed":
                return status["height"]
            if status["status"] in ("refused", "dropped"):
                raise SystemExit(f"submission {submission}: {status}")
            time.sleep(0.2)
        raise SystemExit(f"submission {submission} not committed in 60 s")

    # The document stays here: only its SHA-256 goes to the gateway.
    document = "土地所有權狀 大安區 大安段 12-3 地號 (gateway script)".encode()
    digest = hashlib.sha256(document).hexdigest()
    anchored = call(
        "POST",
        "/v1/anchors",
        {"kind": "land-title", "document_sha256": digest, "parcel": "大安段 12-3"},
        expect=202,
    )
    certificate = anchored["certificate"]
    assert anchored["fingerprint"] == {"alg": "sha256", "digest": digest}, anchored
    anchored_at = committed(anchored["submission"])

    record = call("GET", f"/v1/certificates/{certificate}")
    assert record["status"]["state"] == "active", record
    assert record["commitment"] == anchored["commitment"], record
    receipt = call("GET", f"/v1/certificates/{certificate}/receipt")
    assert len(receipt["receipt"]) > 0, receipt

    mortgage = hashlib.sha256(b"mortgage 2026-0042, bank of taiwan").hexdigest()
    event = call(
        "POST",
        f"/v1/certificates/{certificate}/events",
        {"event": "mortgage-set", "mortgage_sha256": mortgage},
        expect=202,
    )
    committed(event["submission"])

    revoked = call(
        "POST",
        f"/v1/certificates/{certificate}/revoke",
        {"reason": "issued-in-error"},
        expect=202,
    )
    revoked_at = committed(revoked["submission"])
    record = call("GET", f"/v1/certificates/{certificate}")
    assert record["status"]["state"] == "revoked", record

    # A second revocation is refused by the chain's rules, and the refusal says why.
    again = session.post(
        base + f"/v1/certificates/{certificate}/revoke",
        json={"reason": "issued-in-error"},
        timeout=30,
    )
    assert again.status_code == 422, again.text
    history = call("GET", f"/v1/certificates/{certificate}/history")
    print(
        json.dumps(
            {
                "certificate": certificate,
                "anchored_at": anchored_at,
                "revoked_at": revoked_at,
                "second_revoke": again.json(),
                "history": len(history),
            }
        )
    )


if __name__ == "__main__":
    if len(sys.argv) != 3:
        raise SystemExit(__doc__)
    main(sys.argv[1].rstrip("/"), sys.argv[2])
