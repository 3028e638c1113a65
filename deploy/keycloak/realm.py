"""The production realm, derived from the local one (issue 20).

deploy/keycloak/realm-homeward.json is the one realm file: roles (= shared.auth.Role), the
consoles' public clients (code + PKCE), the call-centre confidential client, the claim mappers,
the token lifetimes, the browser flows. It also carries what must never reach a real realm: the
sample accounts (password `homeward-dev`), the `homeward-dev` client (password grant), the
call-centre client's local secret and redirect URIs on any loopback port. `production_realm`
removes those, points the consoles' clients at their public URLs and demands a one-time code of
commanders; `python -m deploy.k8s.generate` writes the result to
deploy/k8s/base/realm-homeward.json, the ConfigMap Keycloak imports in Kubernetes.

Placeholders `${VAR}` are left for Keycloak to fill from its environment when it imports the file
at start-up (`kc.sh start --import-realm`; Keycloak Server guide, "Importing and exporting
realms", "Using environment variables within the realm configuration files"): the consoles'
public URLs are the services' settings HOMEWARD_ALERT_URL, HOMEWARD_DISPATCH_URL and
HOMEWARD_NOTIFY_URL, and the call-centre system's region HOMEWARD_CALLCENTRE_REGION.
"""

from __future__ import annotations

import copy
import json
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[2]
LOCAL_REALM_FILE = ROOT / "deploy" / "keycloak" / "realm-homeward.json"

BROWSER_FLOW = "browser"  # Keycloak's built-in: a one-time code only of those who set one up
COMMANDER_OTP_FLOW = "homeward browser"  # the realm file's: every commander too
LOCAL_ONLY_CLIENTS = frozenset({"homeward-dev"})
# Console client -> (the setting naming the public URL of the service that serves it, its page).
CONSOLE_PAGES = {"homeward-intake": ("HOMEWARD_ALERT_URL", "/intake"),
                 "homeward-console": ("HOMEWARD_DISPATCH_URL", "/console"),
                 "homeward-hub": ("HOMEWARD_NOTIFY_URL", "/hub")}
CALLCENTRE_REGION = "${HOMEWARD_CALLCENTRE_REGION}"


def local_realm() -> dict[str, Any]:
    return dict(json.loads(LOCAL_REALM_FILE.read_text(encoding="utf-8")))


def production_realm(local: dict[str, Any] | None = None) -> dict[str, Any]:
    """The realm for a real deployment: `local` (default: the realm file) without people,
    without the development client and local secrets; the consoles' clients redirect only to
    their public pages; commanders must use OTP (browserFlow COMMANDER_OTP_FLOW)."""
    realm = copy.deepcopy(local if local is not None else local_realm())
    realm["browserFlow"] = COMMANDER_OTP_FLOW
    realm["users"] = [_service_account(u) for u in realm.get("users", [])
                      if "serviceAccountClientId" in u]
    clients = []
    for client in realm["clients"]:
        if client["clientId"] in LOCAL_ONLY_CLIENTS:
            continue
        client.pop("secret", None)  # Keycloak makes one; the operator reads it (Credentials)
        if client["clientId"] in CONSOLE_PAGES:
            setting, page = CONSOLE_PAGES[client["clientId"]]
            client["redirectUris"] = [f"${{{setting}}}{page}"]
            client["webOrigins"] = [f"${{{setting}}}"]
        clients.append(client)
    realm["clients"] = clients
    return realm


def _service_account(user: dict[str, Any]) -> dict[str, Any]:
    attributes = {**user.get("attributes", {}), "region": [CALLCENTRE_REGION]}
    return {**user, "attributes": attributes}


def render(realm: dict[str, Any]) -> str:
    return json.dumps(realm, indent=2, ensure_ascii=False) + "\n"
