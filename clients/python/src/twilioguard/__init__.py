"""twilioguard: verify Twilio webhooks through a central twilioguard service.

The service holds the auth tokens of your Twilio accounts and checks each
``X-Twilio-Signature`` exactly as Twilio computes it; this package is its
dependency-free Python client::

    import twilioguard

    client = twilioguard.Client("http://twilioguard:8080", timeout=2.0)
    verdict = client.verify_webhook(
        url="https://example.com/sms",
        body=raw_body,
        content_type="application/x-www-form-urlencoded",
        signature=headers["X-Twilio-Signature"],
    )
    if not verdict.valid:
        print(verdict.reason, verdict.hint)

:class:`AsyncClient` is the same for asyncio code (it needs aiohttp:
``pip install 'twilioguard[fastapi]'``). :func:`sign` computes the
signature Twilio would send, for tests. The integrations are
:mod:`twilioguard.django`, :mod:`twilioguard.flask`,
:mod:`twilioguard.fastapi` and the ASGI middleware in
:mod:`twilioguard.asgi`; :mod:`twilioguard.wsgi` and :mod:`twilioguard.asgi`
rebuild the signed URL behind proxies. Importing this package imports no
framework and no third-party package.
"""

from __future__ import annotations

from ._async_client import AsyncClient
from ._client import DEFAULT_TIMEOUT, Client
from ._errors import InvalidArgumentError, TwilioguardError, UnavailableError
from ._signature import Params, body_sha256, sign
from ._verdict import Verdict

__all__ = [
    "DEFAULT_TIMEOUT",
    "AsyncClient",
    "Client",
    "InvalidArgumentError",
    "Params",
    "TwilioguardError",
    "UnavailableError",
    "Verdict",
    "__version__",
    "body_sha256",
    "sign",
]

#: __version__ is the version of this package.
__version__ = "0.1.0"
