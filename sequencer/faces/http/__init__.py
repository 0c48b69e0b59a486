"""The tool-PC daemon: an HTTP/JSON API over the line (see docs/daemon.md).

``create_app(line, auth, audit)`` builds the FastAPI app against anything that
implements ``contract.LineControl``; ``server`` runs it under uvicorn.
"""

from sequencer.faces.http.app import create_app
from sequencer.faces.http.auth import AuthConfig, AuthError, Role, load_auth
from sequencer.faces.http.contract import LineControl
from sequencer.store.audit import AuditLog

__all__ = ["AuditLog", "AuthConfig", "AuthError", "LineControl", "Role", "create_app",
           "load_auth"]
