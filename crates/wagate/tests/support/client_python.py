"""Drives a live gateway through the Python client openapi-python-client
generated from its OpenAPI document (tests/e2e/clients.rs runs this).

Usage: client_python.py <dir holding the generated package wagate_client>
<API base URL> <token>. Prints one JSON object: the session it created,
the QR code it read and the ids the list returned.
"""

import json
import sys
import time

sys.path.insert(0, sys.argv[1])

from wagate_client import AuthenticatedClient  # noqa: E402
from wagate_client.api.linking import qr  # noqa: E402
from wagate_client.api.sessions import create, list_  # noqa: E402
from wagate_client.models import Code, CreateSession, ErrorBody, Session, SessionList  # noqa: E402

base, token = sys.argv[2], sys.argv[3]
client = AuthenticatedClient(base_url=base, token=token, raise_on_unexpected_status=True)

created = create.sync_detailed(client=client, body=CreateSession(label="python client"))
assert created.status_code == 201, created
assert isinstance(created.parsed, Session), created.parsed
session = created.parsed

# The session reaches `scan_qr_code` on its own; until then the QR code is
# a 409 (documented, parsed as the error envelope). Bounded by a deadline.
deadline = time.monotonic() + 60
while True:
    answer = qr.sync_detailed(id=session.id, client=client)
    if answer.status_code == 200:
        assert isinstance(answer.parsed, Code), answer.parsed
        code = answer.parsed.code
        break
    assert answer.status_code == 409, answer
    assert isinstance(answer.parsed, ErrorBody), answer.parsed
    if time.monotonic() > deadline:
        raise SystemExit(f"no QR code within 60 s: {answer.parsed.error.code}")
    time.sleep(0.2)

listed = list_.sync_detailed(client=client, limit=100)
assert listed.status_code == 200, listed
assert isinstance(listed.parsed, SessionList), listed.parsed
print(json.dumps({
    "id": str(session.id),
    "status": str(session.status),
    "qr": code,
    "listed": [str(s.id) for s in listed.parsed.data],
}))
