"""The tool-PC daemon: an HTTP/JSON API over the line (see docs/daemon.md).

``create_app(line, auth, audit)`` builds the FastAPI app against anything that
implements ``line.LineControl``; ``server`` runs it under uvicorn.
"""

from .app import create_app
from .audit import AuditLog
from .auth import AuthConfig, AuthError, Role, load_auth
from .line import LineControl

__all__ = ["AuditLog", "AuthConfig", "AuthError", "LineControl", "Role", "create_app",
           "load_auth"]
