"""Every request notify makes to a URL a subscriber gave (issue 12, "SSRF and outbound").

One policy, `OutboundPolicy`, for webhooks and Apprise alike, applied at registration and again
at every send:

- scheme: webhooks `http`/`https`; Apprise only the schemes of `notify_apprise_schemes` that
  notify knows how to guard: `json`/`jsons` (sent by notify's own client below) and chat
  services whose endpoint is fixed by the plugin (`FIXED_HOSTS`). Any other scheme is refused:
  one that names its own host (`gotify://`, `ntfy://`, `apprise://`, `mailto://`…) would be
  resolved and fetched by Apprise outside the guard;
- host: resolved, and every address it resolves to must be public (`addresses.is_public_address`:
  `is_global` after unwrapping IPv4-mapped, 6to4, Teredo and NAT64 forms; 100.64.0.0/10 and
  fec0::/10 refused) or inside `webhook_allow_networks`;
- sends: notify's aiohttp session connects only through `GuardedResolver`, so the address
  checked is the address connected to (a name rebound to an inside address between two
  lookups is never reached), and never follows a redirect; Apprise, used only for fixed
  endpoints, runs with redirects off whatever the URL asks.

Failures reach the ledger and the receipts as a class of `shared.events.DELIVERY_ERROR_CLASSES`,
never the socket's own text.
"""

from __future__ import annotations

import ipaddress
import json
import logging
import socket
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any
from urllib.parse import urlsplit

import aiohttp
from aiohttp.abc import AbstractResolver, ResolveResult
from aiohttp.resolver import ThreadedResolver
from apprise import NotifyFormat
from standardwebhooks import Webhook
from yarl import URL

from services.notify.addresses import address_allowed
from services.notify.content import fit_bytes
from services.notify.delivery_rules import parse_retry_after
from shared.settings import Settings
from shared.verification import SIGNATURE_HEADER

log = logging.getLogger(__name__)

WEBHOOK_PORTS = {"http": 80, "https": 443}
# Apprise's JSON targets name their own host: notify sends them itself, through the guard.
OWN_CLIENT = {"json": 80, "jsons": 443}
# Apprise services whose plugin always posts to one public endpoint, whatever the URL says.
FIXED_HOSTS = {"dingtalk": "oapi.dingtalk.com", "wecombot": "qyapi.weixin.qq.com",
               "feishu": "open.feishu.cn", "lark": "open.larksuite.com",
               "tgram": "api.telegram.org"}
REFUSED = "refused_by_policy"
# Channels whose text is limited in UTF-8 bytes, with the limit: 企业微信 群机器人 `text.content`
# at most 2048 bytes (its webhook API documentation); it answers a longer one with HTTP 200 and
# an errcode, which Apprise counts as sent.
MAX_BYTES = {"wecombot": 2048}


class UnsafeUrl(ValueError):
    """A URL the outbound policy refuses (scheme, host or the addresses it resolves to)."""


class Unresolvable(UnsafeUrl):
    """The URL's host does not resolve (at send time: worth another try)."""


class RefusedByPolicy(OSError):
    """Raised by `GuardedResolver`: the host resolves to an address the policy refuses."""


def _apprise_plugin(url: str) -> Any:
    """Apprise's own reading of `url` (None when Apprise does not understand it), redirects
    off whatever the URL asks (`?redirect=yes`)."""
    import apprise

    plugin = apprise.Apprise.instantiate(url, asset=apprise.AppriseAsset(http_redirects=False),
                                         suppress_exceptions=True)
    if plugin is not None:
        plugin.redirects = False
    return plugin


@dataclass(frozen=True)
class OutboundPolicy:
    """Which URLs notify may send to; see the module docstring. `allow_private` (development
    only) lifts the address rule, never the scheme rule."""

    allow_networks: tuple[str, ...] = ()
    apprise_schemes: frozenset[str] = frozenset(OWN_CLIENT)
    allow_private: bool = False
    # The DNS lookup (default: the system's, through aiohttp's ThreadedResolver).
    resolver: AbstractResolver | None = field(default=None, compare=False)

    def __post_init__(self) -> None:
        unknown = set(self.apprise_schemes) - set(OWN_CLIENT) - set(FIXED_HOSTS)
        if unknown:
            raise ValueError(f"notify_apprise_schemes: {sorted(unknown)} cannot be guarded; "
                             f"choose among {sorted({*OWN_CLIENT, *FIXED_HOSTS})}")
        for net in self.allow_networks:
            ipaddress.ip_network(net, strict=False)

    @classmethod
    def from_settings(cls, settings: Settings) -> OutboundPolicy:
        """ValueError for `webhook_allow_private` outside development (list the networks
        instead) and for schemes that cannot be guarded."""
        if settings.webhook_allow_private and settings.environment != "development":
            raise ValueError("HOMEWARD_WEBHOOK_ALLOW_PRIVATE is for development only; list "
                             "the networks in HOMEWARD_WEBHOOK_ALLOW_NETWORKS")
        return cls(tuple(settings.webhook_allow_networks),
                   frozenset(s.lower() for s in settings.notify_apprise_schemes),
                   settings.webhook_allow_private)

    def address_allowed(self, address: str) -> bool:
        return self.allow_private or address_allowed(address, list(self.allow_networks))

    def target(self, url: str, apprise: bool = False) -> tuple[str, int]:
        """The host and port a send to `url` connects to (for Apprise, as Apprise itself reads
        the URL). UnsafeUrl for a scheme the policy does not allow, a URL without a host, or
        one that does not parse (an unbalanced "[" of an IPv6 literal: urlsplit's ValueError)."""
        try:
            scheme = urlsplit(url).scheme.lower()
        except ValueError as exc:
            raise UnsafeUrl("invalid URL") from exc
        if apprise:
            if scheme not in self.apprise_schemes:
                raise UnsafeUrl(f"Apprise scheme {scheme}:// is not allowed")
            if scheme in FIXED_HOSTS:
                if _apprise_plugin(url) is None:
                    raise UnsafeUrl(f"not a valid {scheme}:// URL")
                return FIXED_HOSTS[scheme], 443
            plugin = _apprise_plugin(url)
            if plugin is None or not plugin.host:
                raise UnsafeUrl(f"not a valid {scheme}:// URL")
            return str(plugin.host).strip("[]"), int(plugin.port or OWN_CLIENT[scheme])
        if scheme not in WEBHOOK_PORTS:
            raise UnsafeUrl("only http(s) webhook URLs are accepted")
        try:
            parsed = URL(url)
            port = parsed.port or WEBHOOK_PORTS[scheme]
        except ValueError as exc:
            raise UnsafeUrl("invalid URL") from exc
        if not parsed.host:
            raise UnsafeUrl("the URL has no host")
        return parsed.host, port

    async def addresses(self, host: str, port: int,
                        family: socket.AddressFamily = socket.AF_UNSPEC) -> list[ResolveResult]:
        """What `host` resolves to (an IP literal: itself), every address allowed: the one
        lookup behind both the check at registration and the connection at send time.
        RefusedByPolicy when any address is refused; OSError when the host does not resolve."""
        try:
            ip = ipaddress.ip_address(host)
        except ValueError:
            results = await (self.resolver or ThreadedResolver()).resolve(host, port, family)
        else:
            results = [ResolveResult(
                hostname=host, host=str(ip), port=port, proto=0, flags=socket.AI_NUMERICHOST,
                family=socket.AF_INET6 if ip.version == 6 else socket.AF_INET)]
        if not results:
            raise OSError(f"{host} has no address")
        if not all(self.address_allowed(r["host"].split("%")[0]) for r in results):
            raise RefusedByPolicy(f"{host} resolves to an address that is not allowed")
        return results

    async def check(self, url: str, apprise: bool = False) -> None:
        """The whole rule for `url`: its scheme, then every address of its host. UnsafeUrl
        (the address is not named), Unresolvable when the host does not resolve."""
        host, port = self.target(url, apprise)
        try:
            await self.addresses(host, port)
        except RefusedByPolicy as exc:
            raise UnsafeUrl(f"host {host} resolves to an address that is not allowed") from exc
        except (OSError, UnicodeError) as exc:
            raise Unresolvable(f"host {host} does not resolve") from exc


class GuardedResolver(AbstractResolver):
    """aiohttp's resolver for notify's session: `OutboundPolicy.addresses`, so the connection
    is made to the very addresses checked and a name that has come to point inside the network
    since it was registered (DNS rebinding) is not connected to."""

    def __init__(self, policy: OutboundPolicy) -> None:
        self.policy = policy

    async def resolve(self, host: str, port: int = 0,
                      family: socket.AddressFamily = socket.AF_INET) -> list[ResolveResult]:
        return await self.policy.addresses(host, port, family)

    async def close(self) -> None:
        return None


@dataclass
class SendResult:
    ok: bool
    status: int | None
    error: str = ""  # one of shared.events.DELIVERY_ERROR_CLASSES
    retry_after: float | None = None
    retryable: bool = True


def http_result(status: int, retry_after: str | None = None) -> SendResult:
    ok = 200 <= status < 300
    return SendResult(ok, status, "" if ok else f"http_{status // 100}xx",
                      parse_retry_after(retry_after))


def failure(exc: BaseException) -> SendResult:
    """The class of a failed request; the exception itself goes to the log only."""
    cause = exc.os_error if isinstance(exc, aiohttp.ClientConnectorError) else exc
    if isinstance(cause, RefusedByPolicy):
        return SendResult(False, None, REFUSED, retryable=False)
    log.info("delivery failed: %s: %s", type(exc).__name__, exc)
    if isinstance(exc, aiohttp.ClientConnectorDNSError):
        return SendResult(False, None, "dns_failed")
    if isinstance(exc, aiohttp.ClientSSLError | aiohttp.ServerFingerprintMismatch):
        return SendResult(False, None, "tls_failed")
    if isinstance(exc, TimeoutError):
        return SendResult(False, None, "timeout")
    return SendResult(False, None, "connect_failed")


def signed_headers(secrets: str | list[str], webhook_id: str, payload: str,
                   now: datetime | None = None) -> dict[str, str]:
    """Standard Webhooks headers; `webhook-signature` carries one `v1,` signature per secret,
    space-separated (the current secret first, then those still inside the rotation
    overlap), so a receiver holding any one of them verifies."""
    now = now or datetime.now(UTC)
    keys = [secrets] if isinstance(secrets, str) else secrets
    return {
        "content-type": "application/json",
        "webhook-id": webhook_id,
        "webhook-timestamp": str(int(now.timestamp())),
        "webhook-signature": " ".join(Webhook(k).sign(webhook_id, now, payload) for k in keys),
    }


class WebhookSender:
    """notify's one HTTP client for subscriber URLs: a shared aiohttp session whose resolver
    applies the policy, bounded timeouts, redirects never followed, at most `per_endpoint`
    concurrent requests per host. Sends signed webhooks and Apprise's JSON targets."""

    def __init__(self, timeout_s: float, per_endpoint: int, total: int = 1024,
                 policy: OutboundPolicy | None = None,
                 signer: Callable[[str], str] | None = None) -> None:
        self.timeout = aiohttp.ClientTimeout(total=timeout_s, connect=min(timeout_s, 3.0))
        self.per_endpoint = per_endpoint
        self.total = total
        self.policy = policy or OutboundPolicy()
        self.signer = signer  # the issuer's detached JWS of a body (issue 17), if any
        self._session: aiohttp.ClientSession | None = None
        self._literals: dict[str, bool] = {}

    def session(self) -> aiohttp.ClientSession:
        if self._session is None or self._session.closed:
            connector = aiohttp.TCPConnector(limit=self.total, limit_per_host=self.per_endpoint,
                                             ttl_dns_cache=60,
                                             resolver=GuardedResolver(self.policy))
            self._session = aiohttp.ClientSession(connector=connector, timeout=self.timeout,
                                                  auto_decompress=False)
        return self._session

    async def close(self) -> None:
        if self._session is not None:
            await self._session.close()

    def _literal_allowed(self, host: str) -> bool:
        """An IP literal in the URL is not resolved, so the policy is applied here (each host's
        answer kept: the policy never changes)."""
        allowed = self._literals.get(host)
        if allowed is None:
            try:
                ipaddress.ip_address(host)
            except ValueError:
                allowed = True  # a name: the resolver applies the policy
            else:
                allowed = self.policy.address_allowed(host)
            if len(self._literals) >= 4096:
                self._literals.clear()
            self._literals[host] = allowed
        return allowed

    async def request(self, method: str, url: str, data: bytes, headers: dict[str, str],
                      params: dict[str, str] | None = None, ssl: bool = True) -> SendResult:
        """One request through the guard; the answer as a SendResult (never raises for the
        network's sake)."""
        try:
            parsed = URL(url)  # once: the session takes it as it is
            if not self._literal_allowed(parsed.host or ""):
                return SendResult(False, None, REFUSED, retryable=False)
            async with self.session().request(method, parsed, data=data, headers=headers,
                                              params=params, ssl=ssl,
                                              allow_redirects=False) as response:
                await response.read()
                return http_result(response.status, response.headers.get("retry-after"))
        except (aiohttp.ClientError, TimeoutError, OSError, ValueError) as exc:
            return failure(exc)

    async def send(self, url: str, secrets: str | list[str], webhook_id: str,
                   body: dict[str, Any], payload: str | None = None) -> SendResult:
        """POST `body` signed with `secrets`; `payload`, when given, is `body` already
        serialised (shared by many recipients)."""
        if payload is None:
            payload = json.dumps(body, ensure_ascii=False, separators=(",", ":"))
        headers = signed_headers(secrets, webhook_id, payload)
        if self.signer is not None:
            headers[SIGNATURE_HEADER] = self.signer(payload)
        return await self.request("POST", url, payload.encode(), headers)


class AppriseSender:
    """Chat/SMS targets in Apprise URL form, one target per subscriber. JSON targets (an SMS
    gateway's, a self-hosted bridge's) go through `http`, the guarded client, with the payload
    Apprise's JSON plugin would send; fixed-endpoint services through Apprise, after the policy
    has checked their endpoint."""

    def __init__(self, http: WebhookSender) -> None:
        self.http = http

    @property
    def policy(self) -> OutboundPolicy:
        return self.http.policy

    async def send(self, url: str, title: str, text: str) -> SendResult:
        try:
            await self.policy.check(url, apprise=True)
        except Unresolvable:
            return SendResult(False, None, "dns_failed")
        except UnsafeUrl:
            return SendResult(False, None, REFUSED, retryable=False)
        plugin = _apprise_plugin(url)
        scheme = urlsplit(url).scheme.lower()
        if scheme in OWN_CLIENT:
            return await self._json(plugin, title, text)
        if scheme in MAX_BYTES:  # the title goes in front of the text, on a line of its own
            text = fit_bytes(text, MAX_BYTES[scheme] - len(title.encode()) - 2)
        try:
            # The text is plain: a plugin that sends HTML or Markdown (Telegram: parse_mode
            # HTML) escapes it, so "身高<120cm" or "A&B" in a description is no broken markup.
            ok = await plugin.async_notify(body=text, title=title, body_format=NotifyFormat.TEXT)
        except Exception as exc:  # a plugin's failure is this target's failure
            log.info("apprise target failed: %s: %s", type(exc).__name__, exc)
            return SendResult(False, None, "target_refused")
        return SendResult(bool(ok), None, "" if ok else "target_refused")

    async def _json(self, plugin: Any, title: str, text: str) -> SendResult:
        """What apprise.plugins.custom_json.NotifyJSON.send posts (payload, extras, headers,
        basic auth, method), through the guarded client instead of `requests`."""
        payload: dict[str, Any] = {"version": plugin.json_version, "title": title,
                                   "message": text, "attachments": [], "type": "info"}
        for key, value in plugin.payload_extras.items():
            if key in payload:
                moved = payload.pop(key)
                if value:
                    payload[value] = moved
            else:
                payload[key] = value
        port = f":{plugin.port}" if isinstance(plugin.port, int) else ""
        url = f"{'https' if plugin.secure else 'http'}://{plugin.host}{port}{plugin.fullpath}"
        headers = {"User-Agent": plugin.app_id, "Content-Type": "application/json",
                   **plugin.headers}
        if plugin.user:
            headers["Authorization"] = aiohttp.encode_basic_auth(plugin.user,
                                                                 plugin.password or "")
        return await self.http.request(plugin.method, url, json.dumps(payload).encode(),
                                       headers, params=plugin.params or None,
                                       ssl=bool(plugin.verify_certificate))
