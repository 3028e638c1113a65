"""Serve one service with uvicorn: `python -m services.<name>` calls `serve(name)`."""

import uvicorn

from shared.settings import Settings


def serve(service: str) -> None:
    settings = Settings()
    uvicorn.run(f"services.{service}.app:create_app", factory=True, host=settings.host,
                port=settings.port_for(service), log_level="info",
                access_log=settings.access_log,
                # The client address is read by the services themselves, from X-Forwarded-For
                # only when the peer is one of HOMEWARD_TRUSTED_PROXIES (issue 12).
                proxy_headers=False)
