"""Verifies webhook deliveries with the PyPI `standardwebhooks` package, an
implementation of the Standard Webhooks specification independent of the
gateway's. Reads one JSON object a line on stdin: {"secret", "headers",
"body" (base64)}; writes one line a request: `ok`, or why it failed.
Exits 3 with a message if the package is missing (CI installs it:
`python3 -m pip install standardwebhooks`)."""

import base64
import json
import sys

try:
    from standardwebhooks.webhooks import Webhook
except ImportError as error:
    sys.stderr.write(
        "the PyPI package standardwebhooks is not installed "
        f"({error}); run: python3 -m pip install standardwebhooks\n"
    )
    sys.exit(3)

for line in sys.stdin:
    if not line.strip():
        continue
    request = json.loads(line)
    try:
        Webhook(request["secret"]).verify(
            base64.b64decode(request["body"]), request["headers"]
        )
        print("ok")
    except Exception as error:  # noqa: BLE001 - every refusal is a verdict
        print(f"refused: {type(error).__name__}: {error}".replace("\n", " "))
