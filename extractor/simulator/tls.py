"""A throwaway certificate authority so the simulator can speak real HTTPS.

The API is HTTPS-only, and clients must verify certificates: tests therefore serve TLS
with a certificate from a private CA made by ``trustme`` and have the client trust exactly
that CA, rather than turning verification off. ``trustme`` is an optional dependency
(the ``simulator`` extra), imported only here and only when TLS is asked for.
"""

from __future__ import annotations

import ssl
from pathlib import Path

from extractor.errors import ConfigError

CA_FILE = "simulator-ca.pem"
# The names a local client may use to reach the simulator.
SERVER_NAMES = ("127.0.0.1", "localhost", "::1")


def make_test_ca(directory: str | Path) -> tuple[ssl.SSLContext, Path]:
    """Make a CA and a server certificate for :data:`SERVER_NAMES`.

    Returns the server's SSL context and the path of the CA certificate (PEM) written to
    ``directory``, for ``ssl.create_default_context(cafile=...)``, ``curl --cacert`` or
    ``SSL_CERT_FILE``.
    """
    try:
        import trustme
    except ImportError as exc:
        raise ConfigError(
            "serving TLS needs trustme: pip install 'twelvetwenty-extractor[simulator]'"
        ) from exc
    ca = trustme.CA(organization_name="twelvetwenty simulator")
    cert = ca.issue_cert(*SERVER_NAMES)
    server = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    cert.configure_cert(server)
    path = Path(directory) / CA_FILE
    path.parent.mkdir(parents=True, exist_ok=True)
    ca.cert_pem.write_to_path(str(path))
    return server, path
