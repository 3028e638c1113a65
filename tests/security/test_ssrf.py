"""Issue 12, "SSRF and outbound": one check for every URL notify sends to, webhook and Apprise
alike, at registration and again at send time; no redirects; commanders see a status class.

Against the real Kafka and Redis of the session and local HTTP sinks (the notify stack of
tests/integration/test_notify_delivery.py)."""

from __future__ import annotations

import dataclasses
import ipaddress
import socket
import uuid
from typing import Any

import pytest
from aiohttp.abc import AbstractResolver, ResolveResult
from hypothesis import given
from hypothesis import strategies as st

from services.notify.addresses import embedded_ipv4, is_public_address
from services.notify.audience import Subscriber, SubscriberKind, group_member
from services.notify.domain import AlertState
from services.notify.outbound import OutboundPolicy, UnsafeUrl, _apprise_plugin
from shared.auth import Role
from shared.events import DELIVERY_ERROR_CLASSES
from shared.settings import Settings
from tests.integration.test_notify_delivery import (  # noqa: F401  (fixtures)
    Stack,
    north,
    sinks,
    stack_factory,
)

# Each form of the issue, and more of its kind. (channel type, URL)
SSRF_FORMS = [
    ("apprise", "gotify://169.254.169.254/AbCdEfGhIjKlMnO"),   # names a host Apprise would fetch
    ("apprise", "ntfy://10.0.0.5/topic"),
    ("apprise", "apprise://127.0.0.1:8001/key"),
    ("apprise", "mailto://user:pass@10.0.0.5"),
    ("apprise", "xml://93.184.216.34/hook"),                  # a scheme not on the allow-list
    ("apprise", "json://169.254.169.254/latest/meta-data"),
    ("apprise", "json://100.100.100.200/"),
    ("apprise", "jsons://[::ffff:10.0.0.1]/hook"),
    ("apprise", "json://localhost:8001/hook"),
    ("webhook", "http://100.100.100.200/latest/meta-data"),   # shared space, cloud metadata
    ("webhook", "http://169.254.169.254/latest"),
    ("webhook", "https://10.0.0.5/"),
    ("webhook", "http://127.0.0.1:8001/api/v1/cases"),
    ("webhook", "http://[::1]:8001/"),
    ("webhook", "http://[::ffff:10.0.0.1]/hook"),              # IPv4-mapped
    ("webhook", "http://[2002:0a00:0001::]/hook"),            # 6to4 of 10.0.0.1
    ("webhook", "http://[fec0::1]/hook"),                     # IPv6 site-local
    ("webhook", "http://[64:ff9b::a00:1]/hook"),              # NAT64 of 10.0.0.1
    ("webhook", "http://[2001:0:4136:e378:8000:63bf:f5ff:fffe]/"),  # Teredo, client 10.0.0.1
    ("webhook", "http://[::10.0.0.1]/"),                      # IPv4-compatible
    ("webhook", "http://localhost:8001/"),                    # a name of a private address
]

PUBLIC = "93.184.216.34"


# --- the address rule --------------------------------------------------------------------------


@pytest.mark.parametrize(("address", "public"), [
    ("100.100.100.200", False), ("100.64.0.1", False), ("::ffff:10.0.0.1", False),
    ("2002:a00:1::", False), ("2002:a9fe:a9fe::1", False), ("fec0::1", False),
    ("64:ff9b::a00:1", False), ("64:ff9b:1::a00:1", False), ("::10.0.0.1", False),
    ("2001:0:4136:e378:8000:63bf:f5ff:fffe", False), ("224.0.0.1", False), ("ff02::1", False),
    ("0.0.0.0", False), ("::", False), ("198.18.0.1", False), ("192.0.2.1", False),
    ("2001:db8::1", False), ("fd00::1", False), ("fe80::1", False),
    (PUBLIC, True), ("::ffff:93.184.216.34", True), ("2606:4700::1111", True),
    ("64:ff9b::5db8:d822", True),
])
def test_public_means_global_after_unwrapping(address: str, public: bool) -> None:
    assert is_public_address(address) is public


_V4 = st.integers(0, 2**32 - 1).map(ipaddress.IPv4Address)


@given(_V4)
def test_no_ipv6_form_of_a_non_public_ipv4_address_is_public(v4: ipaddress.IPv4Address) -> None:
    """Whatever IPv4 address hides inside IPv6 (mapped, 6to4, NAT64), the IPv6 form is public
    only if the IPv4 address is."""
    n = int(v4)
    forms = [ipaddress.IPv6Address((0xFFFF << 32) | n),               # ::ffff:a.b.c.d
             ipaddress.IPv6Address((0x2002 << 112) | (n << 80) | 1),  # 2002:AABB:CCDD::1
             ipaddress.IPv6Address((0x64FF9B << 96) | n)]             # 64:ff9b::a.b.c.d
    for form in forms:
        assert v4 in embedded_ipv4(form)
        if not is_public_address(str(v4)):
            assert not is_public_address(str(form)), form


def test_apprise_never_follows_a_redirect_even_when_the_url_asks() -> None:
    for url in ("dingtalk://abcdef0123456789?redirect=yes", "json://example.org/?redirect=yes"):
        assert _apprise_plugin(url).redirects is False


def test_only_schemes_notify_can_guard_may_be_allowed() -> None:
    with pytest.raises(ValueError, match="gotify"):
        OutboundPolicy(apprise_schemes=frozenset({"json", "gotify"}))
    with pytest.raises(ValueError, match="gotify"):
        OutboundPolicy.from_settings(Settings(notify_apprise_schemes=["json", "gotify"]))


def test_a_case_group_gateway_of_a_scheme_that_cannot_be_guarded_stops_the_start() -> None:
    from services.notify.app import create_app

    for template in ("ntfy://10.0.0.5/{phone}", "xml://sms.example.cn/{phone}"):
        with pytest.raises(UnsafeUrl):
            create_app(Settings(notify_group_apprise_url=template), timers=False,
                       consume=False)
    assert create_app(Settings(notify_group_apprise_url="jsons://sms.example.cn/s/{phone}"),
                      timers=False, consume=False)


def test_allowing_every_private_address_is_for_development_only() -> None:
    production = {"environment": "production", "jwt_secret": "x" * 48}
    with pytest.raises(ValueError, match="ALLOW_NETWORKS"):
        OutboundPolicy.from_settings(Settings(**production, webhook_allow_private=True))
    policy = OutboundPolicy.from_settings(Settings(**production,
                                                   webhook_allow_networks=["10.8.0.0/16"]))
    assert policy.address_allowed("10.8.1.2") and not policy.address_allowed("10.9.1.2")
    assert not policy.address_allowed("100.100.100.200")


# --- at registration ---------------------------------------------------------------------------


def _request(channel: str, url: str, **extra: Any) -> dict[str, Any]:
    lat, lon = north(10)
    return {"kind": "hub", "name": "站", "location": {"lat": lat, "lon": lon},
            "region_code": "140403", "channel": {"type": channel, "url": url}, **extra}


@pytest.fixture
async def strict(stack_factory: Any) -> Stack:  # noqa: F811
    """notify allowing no private network at all (production's policy)."""
    return await stack_factory(webhook_allow_networks=[])  # type: ignore[no-any-return]


async def test_every_ssrf_form_is_refused_at_registration(strict: Stack) -> None:
    for channel, url in SSRF_FORMS:
        got = await strict.http.post("/api/v1/subscribers", headers=strict.token(Role.admin),
                                     json=_request(channel, url))
        assert got.status_code == 422, (url, got.text)
        error = got.json()["error"]
        assert (error["code"], error["field"]) == ("unsafe_url", "channel.url"), url


async def test_every_ssrf_form_is_refused_when_a_channel_is_repointed(strict: Stack) -> None:
    made = await strict.subscribe("改址站", SubscriberKind.hub, *north(10))  # console
    url = f"/api/v1/subscribers/{made['subscriber_id']}/channel"
    for channel, target in SSRF_FORMS:
        got = await strict.http.put(url, headers=strict.token(Role.admin),
                                    json={"channel": {"type": channel, "url": target}})
        assert got.status_code == 422, (target, got.text)
        error = got.json()["error"]
        assert (error["code"], error["field"]) == ("unsafe_url", "channel.url"), target
    kept = await strict.notify.subscribers.get(made["subscriber_id"])
    assert kept is not None and kept.channel.type == "console"


# --- at send time ------------------------------------------------------------------------------


def _stored(channel: str, url: str) -> Subscriber:
    """A subscriber as if registered before the rule (or written by whoever reached the store)."""
    lat, lon = north(10)
    return Subscriber.model_validate({
        "kind": "hub", "name": url, "location": {"lat": lat, "lon": lon},
        "region_code": "140403", "channel": {"type": channel, "url": url},
        "subscriber_id": f"S{uuid.uuid4().hex[:16]}", "secret": "whsec_" + "A" * 43})


async def test_every_ssrf_form_is_refused_at_send_time(strict: Stack) -> None:
    for channel, url in SSRF_FORMS:
        await strict.notify.subscribers.add(_stored(channel, url))
    case_id = await strict.report()
    rows = {r["name"]: r for r in (await strict.deliveries(case_id))["deliveries"]}
    for _, url in SSRF_FORMS:
        assert (rows[url]["state"], rows[url]["error"]) == ("failed", "refused_by_policy"), url
        assert rows[url]["http_status"] is None and rows[url]["attempts"] == 1


class Dns(AbstractResolver):
    """A DNS whose answers the test changes: what a rebinding attacker's name server does."""

    def __init__(self) -> None:
        self.answers: dict[str, str] = {}

    async def resolve(self, host: str, port: int = 0,
                      family: socket.AddressFamily = socket.AF_INET) -> list[ResolveResult]:
        if host not in self.answers:
            raise OSError(f"{host}: no such name")
        address = self.answers[host]
        return [ResolveResult(hostname=host, host=address, port=port, family=socket.AF_INET,
                              proto=0, flags=0)]

    async def close(self) -> None:
        return None


async def test_a_name_resolving_to_a_private_address_at_send_time_is_not_connected_to(
    stack_factory: Any, sinks: Any  # noqa: F811
) -> None:
    """Registered while the name was public; by send time it points inside. The connection is
    made to the addresses the guard checked, so nothing reaches the inside; once the name is
    back on an allowed address (the sink, allow-listed here) the same path delivers."""
    stack: Stack = await stack_factory()  # allows 127.0.0.1/32, the sinks' network
    dns = Dns()
    stack.notify.webhooks.policy = dataclasses.replace(stack.notify.webhooks.policy,
                                                       resolver=dns)
    hook, bridge = sinks("rebind-hook"), sinks("rebind-json")
    port = hook.url.split(":")[2].split("/")[0]
    dns.answers = {"hub.rebind.test": PUBLIC, "bridge.rebind.test": PUBLIC}
    made = await stack.subscribe("换绑站", SubscriberKind.hub, *north(10),
                                 url=f"http://hub.rebind.test:{port}/hook/rebind-hook")
    got = await stack.http.post("/api/v1/subscribers", headers=stack.token(Role.admin),
                                json=_request("apprise",
                                              f"json://bridge.rebind.test:{port}/hook/rebind-json"))
    assert got.status_code == 201, got.text
    try:
        await _rebinding(stack, dns, hook, bridge)
    finally:
        # Names only this test's DNS knows: off the shared subscriber log's active hubs, so no
        # later stack rebuilt from it keeps asking the real DNS for them.
        for subscriber_id in (made["subscriber_id"], got.json()["subscriber_id"]):
            await stack.notify.disable(subscriber_id)


async def _rebinding(stack: Stack, dns: Dns, hook: Any, bridge: Any) -> None:

    dns.answers = {"hub.rebind.test": "10.0.0.5", "bridge.rebind.test": "169.254.169.254"}
    case_id = await stack.report()
    rows = (await stack.deliveries(case_id))["deliveries"]
    assert {(r["channel"], r["state"], r["error"]) for r in rows} == {
        ("webhook", "failed", "refused_by_policy"), ("apprise", "failed", "refused_by_policy")}
    assert hook.requests == [] and bridge.requests == []

    dns.answers = {"hub.rebind.test": "127.0.0.1", "bridge.rebind.test": "127.0.0.1"}
    case_id = await stack.report()
    rows = (await stack.deliveries(case_id))["deliveries"]
    assert {r["state"] for r in rows} == {"sent"}
    assert len(hook.requests) == 1 and len(bridge.requests) == 1


async def test_redirects_are_not_followed(stack_factory: Any, sinks: Any) -> None:  # noqa: F811
    stack: Stack = await stack_factory()
    inner = sinks("inside")
    hook = sinks("redirect-hook", status=307, script=[(307, {"location": inner.url})] * 3)
    bridge = sinks("redirect-json", status=302)
    bridge.script = [(302, {"location": inner.url})] * 3
    await stack.subscribe("跳转站", SubscriberKind.hub, *north(10), url=hook.url)
    got = await stack.http.post("/api/v1/subscribers", headers=stack.token(Role.admin),
                                json=_request("apprise", bridge.url.replace("http://", "json://")
                                              + "?redirect=yes"))
    assert got.status_code == 201, got.text
    case_id = await stack.report()
    rows = (await stack.deliveries(case_id))["deliveries"]
    assert {(r["state"], r["error"], r["http_status"]) for r in rows} == {
        ("failed", "http_3xx", 307), ("failed", "http_3xx", 302)}
    assert len(hook.requests) == 1 and len(bridge.requests) == 1 and inner.requests == []


async def test_commanders_see_a_status_class_not_the_socket_error(
    stack_factory: Any, sinks: Any  # noqa: F811
) -> None:
    stack: Stack = await stack_factory(webhook_timeout_s=0.5, notify_retry_max_attempts=1)
    dns = Dns()
    stack.notify.webhooks.policy = dataclasses.replace(stack.notify.webhooks.policy,
                                                       resolver=dns)
    closed = socket.socket()
    closed.bind(("127.0.0.1", 0))
    closed_port = closed.getsockname()[1]
    closed.close()  # nothing listens there now
    slow, failing = sinks("slow", delay_s=2.0), sinks("failing", status=503)
    targets = {
        "connect_failed": f"http://127.0.0.1:{closed_port}/hook",
        "timeout": slow.url,
        "http_5xx": failing.url,
        "dns_failed": "http://no-such-host.rebind.test/hook",
    }
    for name, url in targets.items():
        await stack.notify.subscribers.add(_stored("webhook", url).model_copy(
            update={"name": name}))
    case_id = await stack.report()
    rows = (await stack.deliveries(case_id))["deliveries"]
    seen = {r["name"]: r["error"] for r in rows}
    assert seen == {name: name for name in targets}
    for row in rows:
        assert row["error"] in DELIVERY_ERROR_CLASSES
        for leak in (str(closed_port), "127.0.0.1", "Errno", "refused", "rebind.test"):
            assert leak not in row["error"]


async def test_a_chat_service_is_sent_to_only_while_its_fixed_endpoint_resolves_publicly() -> None:
    """dingtalk:// and the like post to one endpoint fixed by the plugin: the URL cannot name
    another host, and the endpoint's resolution is checked at registration and at send."""
    from services.notify.outbound import AppriseSender, WebhookSender

    dns = Dns()
    policy = OutboundPolicy(apprise_schemes=frozenset({"json", "dingtalk"}), resolver=dns)
    http = WebhookSender(1.0, 1, policy=policy)
    sender = AppriseSender(http)
    url = "dingtalk://0123456789abcdef0123456789abcdef/"
    try:
        dns.answers = {"oapi.dingtalk.com": "10.0.0.5"}  # a hijacked resolver
        with pytest.raises(UnsafeUrl):
            await policy.check(url, apprise=True)
        refused = await sender.send(url, "t", "x")
        assert (refused.ok, refused.error, refused.retryable) == (False, "refused_by_policy",
                                                                   False)
        dns.answers = {"oapi.dingtalk.com": PUBLIC}
        await policy.check(url, apprise=True)
        assert policy.target(url, apprise=True) == ("oapi.dingtalk.com", 443)
    finally:
        await http.close()


@pytest.mark.parametrize(("legacy", "shown"), [
    ("ClientConnectorError: Cannot connect to host 10.0.0.5:6379 ssl:default [Connection "
     "refused]", "connect_failed"),
    ("ServerTimeoutError: Timeout on reading data from socket", "timeout"),
    ("HTTP 503", "http_5xx"), ("HTTP 404", "http_4xx"),
    ("refused: the URL's address is not allowed", "refused_by_policy"),
    ("apprise: OSError: [Errno 111] Connection refused", "target_refused"),
    ("alert cancelled", "alert cancelled"), ("http_5xx", "http_5xx"), ("", ""),
])
def test_errors_recorded_before_the_classes_are_shown_as_a_class(legacy: str,
                                                                  shown: str) -> None:
    from services.notify.ledger_rules import error_class

    assert error_class(legacy) == shown


# --- the case group's SMS gateway ----------------------------------------------------------------


def _alert() -> AlertState:
    return AlertState.model_validate({
        "alert_id": "A-140403-20261122-AAAAAA", "case_id": "140403-20261122-AAAAAA",
        "region_code": "140403", "exercise": False, "released": False,
        "seen_at": "2026-11-22T00:00:00+00:00", "lat": 36.19, "lon": 113.11, "radius_km": 100,
        "issued_at": "2026-11-22T00:00:00+00:00", "versions": []})


@pytest.mark.parametrize("phone", [
    "13800000000/../../admin", "13800000000?to=evil", "13800000000@10.0.0.5", "1380000000#x",
    "+86 138 0000 0000&callback=http://10.0.0.5", "12345", "", "not a number", "010-1234",
])
def test_a_phone_that_is_not_a_number_is_never_put_into_the_gateway_url(phone: str) -> None:
    from services.notify.audience import group_members
    from shared.phones import PhoneError

    alert = _alert()
    template = "jsons://sms.example.cn/send/{phone}?sign=1"
    with pytest.raises(PhoneError):
        group_member(alert, {"name": "x", "phone": phone}, template)
    assert group_members(alert, [{"name": "x", "phone": phone}], template) == []
    good = group_member(alert, {"name": "y", "phone": "138 0000 0000"}, template)
    assert isinstance(good.channel.url, str)
    assert good.channel.url == "jsons://sms.example.cn/send/%2B8613800000000?sign=1"


@given(st.text(max_size=30))
def test_whatever_a_commander_types_the_gateway_url_keeps_its_host_and_path(text: str) -> None:
    from services.notify.audience import group_members

    alert = _alert()
    for member in group_members(alert, [{"phone": text}], "json://sms.example.cn/s/{phone}"):
        url = str(member.channel.url)  # type: ignore[union-attr]
        assert url.startswith("json://sms.example.cn/s/%2B")
        assert url.removeprefix("json://sms.example.cn/s/%2B").isdigit()



BAD_PHONES = ["13800000000/../../admin", "13800000000?to=evil", "13800000000@10.0.0.5",
              "+86 138 0000 0000&callback=http://10.0.0.5", "12345", "not a number", "010-1234"]


@pytest.mark.parametrize("phone", BAD_PHONES)
def test_dispatch_refuses_a_member_phone_that_is_not_a_number(phone: str) -> None:
    """A commander adds a member: the phone is validated at dispatch's API (422 naming
    `phone`) before any event carries it to notify."""
    from pydantic import ValidationError

    from services.dispatch.api import MemberRequest

    member = {"duty": "procuratorate", "name": "马明", "title": "检察官",
              "organ_name": "博尔塔拉蒙古自治州人民检察院", "reason": "提前介入"}
    with pytest.raises(ValidationError) as refused:
        MemberRequest.model_validate({**member, "phone": phone})
    [error] = refused.value.errors()
    assert error["loc"] == ("phone",)
    assert error["type"] == ("string_too_long" if len(phone) > 40 else "phone_format")
    ok = MemberRequest.model_validate({**member, "phone": "0909-123 4567"})
    assert ok.phone == "+869091234567"
    assert MemberRequest.model_validate(member).phone == ""


@pytest.mark.parametrize("url", [
    "xq82qo3kmzf9ky+.6n0mg://\x0fa7[\u00c6",  # the fuzzer's: PUT …/channel answered 500
    "json://[::1/hook", "jsons://hooks.example.cn]/x", "json://user@[fe80::1%/x",
    "https://[2001:db8::1/hook", "http://hooks.example.cn]:8080/",
])
@pytest.mark.parametrize("apprise", [True, False])
async def test_a_url_that_does_not_parse_is_refused_naming_the_url_not_a_server_error(
        url: str, apprise: bool) -> None:
    policy = OutboundPolicy(apprise_schemes=frozenset({"json", "jsons"}), resolver=Dns())
    with pytest.raises(UnsafeUrl):
        policy.target(url, apprise=apprise)
    with pytest.raises(UnsafeUrl):
        await policy.check(url, apprise=apprise)
