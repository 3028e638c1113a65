"""Issue 17: issuer signatures (CAP XML-DSig, detached JWS, JWKS rotation), short codes and the
verification answers — without Kafka or Redis."""

from __future__ import annotations

import io
import json
import re
import subprocess
from datetime import UTC, datetime, timedelta
from pathlib import Path

import jwt
import pytest
import xmlschema
from hypothesis import given
from hypothesis import strategies as st
from PIL import Image
from signxml import SignatureConfiguration, XMLVerifier

from services.notify import content, domain, formats, poster, verify
from services.notify.keystore import SigningKeysMissing, generate_key, load_keyring
from services.notify.photos import PhotoSource
from services.notify.signing import SignatureInvalid, verify_body, verify_cap
from shared.case_ids import ALERT_ID
from shared.settings import Settings
from shared.verification import (
    ALPHABET,
    SIGNATURE_HEADER,
    VerifyStatus,
    display_code,
    parse_code,
    short_code,
)
from tests.helpers import pdf_qr_codes, pdf_text, report_body

CAP_XSD = Path(__file__).parents[2] / "services/notify/schema/CAP-v1.2.xsd"
NOW = datetime(2026, 11, 22, 1, 0, tzinfo=UTC)


def _alert(**overrides: object) -> domain.AlertState:
    values: dict[str, object] = dict(
        alert_id="A-140403-20261122-ABCDEF", case_id="140403-20261122-ABCDEF",
        region_code="140403", exercise=False, released=True, seen_at=NOW, lat=36.19, lon=113.11,
        radius_km=100.0, issued_at=NOW,
        versions=[domain.VersionInfo(version=1, msg_type="Alert", sent=NOW, radius_km=100.0)],
        report=report_body(), leader={"name": "王局", "title": "局长", "phone": "0355-1234567"})
    values.update(overrides)
    return domain.AlertState.model_validate(values)


@pytest.fixture(autouse=True)
def _no_run_signing_key(monkeypatch: pytest.MonkeyPatch) -> None:
    """These tests describe the keys themselves: the key tests/conftest.py gives the services of
    this run (HOMEWARD_SIGNING_*) would merge into their settings (pydantic-settings merges a
    dict from the environment with one passed in)."""
    monkeypatch.delenv("HOMEWARD_SIGNING_KEYS", raising=False)
    monkeypatch.delenv("HOMEWARD_SIGNING_DIR", raising=False)


def _settings(tmp: Path, keys: dict[str, str] | None = None, **extra: object) -> Settings:
    """Development unless told (unset means production since issue 12, where a missing key
    refuses to start: tested below)."""
    extra.setdefault("environment", "development")
    return Settings(data_dir=tmp, signing_dir=tmp / "keys", signing_keys=keys or {},
                    **extra)  # type: ignore[arg-type]


def _cap(alert: domain.AlertState, version: int, scope: str = "Public") -> bytes:
    return formats.cap_xml(alert, version, scope, "s@x.cn", "https://n/a.xml",  # type: ignore[arg-type]
                           "110", 1000, verify_base="https://v.example.cn")


def _versions(alert: domain.AlertState) -> list[tuple[int, domain.AlertState]]:
    """Every kind of version: Alert, Update (widened), Cancel."""
    out = [(1, alert.model_copy(deep=True))]
    alert.radius_km = 200.0
    alert.bump("Update", NOW + timedelta(hours=1))
    out.append((2, alert.model_copy(deep=True)))
    alert.cancelled, alert.outcome, alert.report = True, "found_safe", None
    alert.bump("Cancel", NOW + timedelta(hours=2))
    out.append((3, alert.model_copy(deep=True)))
    return out


# --- CAP XML-DSig ----------------------------------------------------------------------------

@pytest.mark.parametrize("scope", ["Public", "Restricted"])
def test_signed_cap_of_every_version_verifies_and_stays_valid_cap(tmp_path: Path,
                                                                   scope: str) -> None:
    keyring = load_keyring(_settings(tmp_path))
    jwks = keyring.jwks()
    schema = xmlschema.XMLSchema(CAP_XSD)
    for version, alert in _versions(_alert()):
        signed = keyring.sign_cap(_cap(alert, version, scope))
        schema.validate(signed.decode())
        assert signed.rstrip().endswith(b"</ds:Signature></alert>")
        content = verify_cap(signed, jwks)
        assert f".v{version}".encode() in content
        # Also with signxml directly, pinning the JWKS entry's certificate.
        cert = "-----BEGIN CERTIFICATE-----\n" + jwks["keys"][0]["x5c"][0] + \
            "\n-----END CERTIFICATE-----\n"
        XMLVerifier().verify(signed, x509_cert=cert,
                             expect_config=SignatureConfiguration(location="./"))


@pytest.mark.parametrize(("old", "new"), [
    ("<contact>110</contact>", "<contact>13912345678</contact>"),  # a fraudster's number
    ("<scope>Public</scope>", "<scope>Private</scope>"),
    (" 100</circle>", " 10</circle>"),
    ("<urgency>Immediate</urgency>", "<urgency>Past</urgency>"),
])
def test_tampered_cap_fails(tmp_path: Path, old: str, new: str) -> None:
    keyring = load_keyring(_settings(tmp_path))
    alert = _alert()
    signed = keyring.sign_cap(_cap(alert, 1)).decode()
    assert old in signed
    with pytest.raises(SignatureInvalid):
        verify_cap(signed.replace(old, new).encode(), keyring.jwks())


def test_cap_signed_by_a_key_not_in_the_jwks_fails(tmp_path: Path) -> None:
    ours = load_keyring(_settings(tmp_path / "a"))
    forger = load_keyring(_settings(tmp_path / "b"))  # same kid, another key
    signed = forger.sign_cap(_cap(_alert(), 1))
    with pytest.raises(SignatureInvalid):
        verify_cap(signed, ours.jwks())


# --- JWS of JSON pushes ----------------------------------------------------------------------

def test_push_jws_verifies_with_pyjwt_against_the_jwks(tmp_path: Path) -> None:
    keyring = load_keyring(_settings(tmp_path))
    body = content.push_body(_alert(), "public", "https://n/a.xml", "110", 1000, NOW,
                            verify_base="https://v.example.cn")
    payload = json.dumps(body, ensure_ascii=False, separators=(",", ":"))
    token = keyring.sign_body(payload)
    _, empty, _ = token.split(".")
    assert empty == ""  # detached
    jwk = jwt.PyJWKSet.from_dict(keyring.jwks())[jwt.get_unverified_header(token)["kid"]]
    jwt.api_jws.decode(token, jwk.key, algorithms=["ES256"], detached_payload=payload.encode())
    assert verify_body(payload, token, keyring.jwks())["alg"] == "ES256"
    with pytest.raises(SignatureInvalid):
        verify_body(payload.replace("110", "139"), token, keyring.jwks())
    assert SIGNATURE_HEADER == "homeward-signature"


def test_rotation_old_signatures_verify_new_ones_use_the_new_kid(tmp_path: Path) -> None:
    generate_key(tmp_path / "keys", "2026-10", "test")
    generate_key(tmp_path / "keys", "2026-11", "test")
    before = load_keyring(_settings(tmp_path, {"2026-10": "active", "2026-11": "published"}))
    # Published before it signs: listed, not used.
    assert [k["kid"] for k in before.jwks()["keys"]] == ["2026-10", "2026-11"]
    old_cap = before.sign_cap(_cap(_alert(), 1))
    old_jws = before.sign_body('{"a":1}')
    assert jwt.get_unverified_header(old_jws)["kid"] == "2026-10"
    after = load_keyring(_settings(tmp_path, {"2026-10": "retired", "2026-11": "active"}))
    jwks = after.jwks()
    assert [k["kid"] for k in jwks["keys"]] == ["2026-11", "2026-10"]
    verify_cap(old_cap, jwks)
    verify_body('{"a":1}', old_jws, jwks)
    new_jws = after.sign_body('{"a":1}')
    assert jwt.get_unverified_header(new_jws)["kid"] == "2026-11"
    assert b"<ds:KeyName>2026-11</ds:KeyName>" in after.sign_cap(_cap(_alert(), 1))
    # Once dropped from the JWKS, what the old key signed no longer verifies.
    dropped = load_keyring(_settings(tmp_path, {"2026-11": "active"}))
    with pytest.raises(SignatureInvalid):
        verify_body('{"a":1}', old_jws, dropped.jwks())


@pytest.mark.parametrize(("environment", "keys", "error"), [
    ("production", {}, "no signing key"),
    ("staging", {}, "no signing key"),
    ("development", {"missing": "active"}, "signing key missing"),
    ("development", {"k1": "published"}, "exactly one"),
])
def test_keyring_refuses_to_start_without_a_usable_key(tmp_path: Path, environment: str,
                                                       keys: dict[str, str], error: str) -> None:
    generate_key(tmp_path / "keys", "k1", "test")
    with pytest.raises(SigningKeysMissing, match=error):
        load_keyring(_settings(tmp_path, keys, environment=environment,
                               jwt_algorithm="EdDSA", jwt_public_key="x"))


def test_development_key_is_generated_once_into_the_data_dir_private(tmp_path: Path) -> None:
    first = load_keyring(_settings(tmp_path)).jwks()
    key_file = tmp_path / "keys" / "local-1.key.pem"
    assert key_file.stat().st_mode & 0o077 == 0
    assert load_keyring(_settings(tmp_path)).jwks() == first
    assert "d" not in first["keys"][0]  # no private part published


# --- short codes -----------------------------------------------------------------------------

@given(st.from_regex(ALERT_ID, fullmatch=True))
def test_short_codes_are_typable_and_survive_how_people_type_them(alert_id: str) -> None:
    code = short_code(alert_id)
    assert len(code) == 10 and set(code) <= set(ALPHABET)
    assert not set(code) & set("ILOU")
    shown = display_code(code)
    for typed in (shown, shown.lower(), f" {code[:3]} {code[3:]} ", shown.replace("0", "o")
                  .replace("1", "l")):
        assert parse_code(typed) == code


@pytest.mark.parametrize("typed", ["", "ABC", "7K3QZ-M0C4D-X", "7K3QZ-M0C4!",
                                   "ＡＢＣＤＥＦＧＨＪＫ"])
def test_malformed_codes_are_refused(typed: str) -> None:
    assert parse_code(typed) is None


def test_every_public_text_carries_the_code_and_the_verification_link(tmp_path: Path) -> None:
    alert = _alert()
    code = display_code(alert.short_code)
    url = f"https://v.example.cn/verify?code={code}"
    for scope in ("public", "restricted"):
        body = content.push_body(alert, scope, "https://n/a.xml", "110", 300, NOW,  # type: ignore[arg-type]
                                verify_base="https://v.example.cn")
        assert body["short_code"] == alert.short_code and body["verify_url"] == url
        assert code in body["text"] and url in body["text"] and len(body["text"]) <= 300
    cap = _cap(alert, 1).decode()
    assert code in cap and url in cap
    feed = formats.atom_feed([alert], "https://n", "110", 1000,
                             verify_base="https://v.example.cn").decode()
    assert url in feed
    ended = alert.model_copy(deep=True)
    ended.cancelled, ended.report = True, None
    ended.bump("Cancel", NOW)
    assert code in _cap(ended, 2).decode()
    assert content.cancel_body(ended, NOW)["short_code"] == alert.short_code


# --- verification answers --------------------------------------------------------------------

def _answer(alert: domain.AlertState | None, lang: str = "zh-CN") -> dict[str, object]:
    return verify.answer(alert, short_code("A-000000-00000000-NONE00"), lang,
                         base_url="https://n", contact="110（公安机关）", limit=1000,
                         zone="Asia/Shanghai", verify_base="https://v", issuer="Homeward")


def test_verify_answers_active_ended_unknown() -> None:
    active = _answer(_alert())
    assert active["status"] == VerifyStatus.active and active["public"] is True
    assert active["child"]["name"] == "张小明"  # type: ignore[index]
    assert active["contact"] == "110（公安机关）" and "北京时间" in str(active["last_seen"])
    assert str(active["poster_url"]).endswith("/poster.pdf")
    for secret in ("李红", "13800000000", "晋D·12345"):
        assert secret not in json.dumps(active, ensure_ascii=False)
    held = _answer(_alert(released=False))
    assert held["status"] == VerifyStatus.active and held["public"] is False
    assert "child" not in held and "张小明" not in json.dumps(held, ensure_ascii=False)
    for outcome, words in (("found_safe", "已找到，请停止转发"), ("false_report", "已撤销")):
        alert = _alert()
        alert.cancelled, alert.outcome, alert.report = True, outcome, None
        alert.bump("Cancel", NOW)
        ended = _answer(alert)
        assert ended["status"] == VerifyStatus.ended and words in str(ended["message"])
        assert set(ended) == {"status", "code", "issuer", "message", "ended_at", "ended_at_text"}
    unknown = _answer(None, "en")
    assert unknown["status"] == VerifyStatus.unknown and "110" in str(unknown["message"])


# --- poster ----------------------------------------------------------------------------------

def test_poster_prints_the_photo_text_and_qr_code(tmp_path: Path) -> None:
    image = io.BytesIO()
    Image.new("RGB", (300, 400), (200, 120, 40)).save(image, format="JPEG")
    body = content.push_body(_alert(), "public", "https://n/a.xml", "110（公安机关）", 1000, NOW,
                            verify_base="https://v.example.cn")
    url = f"https://v.example.cn/verify?code={display_code(body['short_code'])}"
    pdf = poster.alert_poster(body, url, "Homeward", NOW, "Asia/Shanghai",
                              photo=image.getvalue())
    text = pdf_text(pdf, tmp_path)
    assert "张小明" in text and "2026-11-22 09:00（北京时间）" in text and "110（公安机关）" in text
    assert pdf_qr_codes(pdf, tmp_path) == [url]
    (tmp_path / "doc.pdf").write_bytes(pdf)
    listed = subprocess.run(["pdfimages", "-list", str(tmp_path / "doc.pdf")],
                            capture_output=True, text=True, check=True).stdout
    assert len(listed.strip().splitlines()) - 2 == 2  # the photo and the QR code
    without = poster.alert_poster(body, url, "Homeward", NOW, "Asia/Shanghai", photo=b"junk")
    assert "张小明" in pdf_text(without, tmp_path)


@pytest.mark.parametrize(("url", "fetched"), [
    ("http://alert.internal:8000/photos/ab12.jpg", True),
    ("http://alert.internal:8000/photos/../admin", False),
    ("http://alert.internal:8000/photos/a/b.jpg", False),
    ("http://alert.internal:8000/other/ab12.jpg", False),
    ("http://alert.internal:8000.evil.cn/photos/ab12.jpg", False),
    ("https://example.org/p.jpg", False),
    ("http://169.254.169.254/photos/x", False),
])
def test_poster_photos_come_only_from_the_platforms_photo_store(url: str, fetched: bool) -> None:
    assert PhotoSource("http://alert.internal:8000/").ours(url) is fetched


@pytest.mark.parametrize("name", ["阿卜杜热合曼·买买提依明·艾合买提江", "张" * 30,
                                  "阿依努尔·买买提" * 6, "Muhammad Abdurehim Abdukerim Tursun"])
def test_a_long_name_is_printed_whole_inside_the_page(name: str, tmp_path: Path) -> None:
    body = content.push_body(_alert(), "public", "https://n/a.xml", "110（公安机关）", 1000, NOW,
                            verify_base="https://v.example.cn")
    body["child"]["name"] = name
    pdf = poster.alert_poster(body, "https://v.example.cn/verify?code=X", "Homeward", NOW,
                              "Asia/Shanghai")
    (tmp_path / "doc.pdf").write_bytes(pdf)
    boxes = subprocess.run(["pdftotext", "-bbox", str(tmp_path / "doc.pdf"), "-"],
                           capture_output=True, text=True, check=True).stdout
    words = re.findall(r'<page width="([\d.]+)"|<word xMin="([\d.-]+)" yMin="[\d.-]+" '
                       r'xMax="([\d.-]+)" yMax="[\d.-]+">([^<]*)</word>', boxes)
    page_width = float(next(w for w, *_ in words if w))
    printed = [(float(x0), float(x1), text) for _, x0, x1, text in words if text]
    assert all(0 <= x0 and x1 <= page_width for x0, x1, _ in printed), printed[:6]
    assert "".join(name.split()) in "".join(t for _, _, t in printed)


@pytest.mark.parametrize("words", [
    "穿红色外套，蓝色牛仔裤，白色运动鞋，背黑色书包。" * 40,  # 1,000 characters, the limit
    "看见一个孩子" + "🇨🇳" * 400,
    "右眉有痣，说山西话，\n" * 90,
])
@pytest.mark.parametrize("with_photo", [True, False])
def test_a_long_description_leaves_the_whole_qr_code_on_one_page(
        words: str, with_photo: bool, tmp_path: Path) -> None:
    """However long the description (up to the model's 1,000 characters), the poster is one
    page with the QR code whole on it: the photo and the text shrink, then the words are cut
    with "…" (the full text is on the verification page the code opens)."""
    image = io.BytesIO()
    Image.new("RGB", (300, 400), (200, 120, 40)).save(image, format="JPEG")
    body = content.push_body(_alert(), "public", "https://n/a.xml", "110（公安机关）", 1000, NOW,
                            verify_base="https://v.example.cn")
    body["child"]["description"] = words[:1000]
    url = f"https://v.example.cn/verify?code={display_code(body['short_code'])}"
    pdf = poster.alert_poster(body, url, "Homeward", NOW, "Asia/Shanghai",
                              photo=image.getvalue() if with_photo else None)
    (tmp_path / "doc.pdf").write_bytes(pdf)
    info = subprocess.run(["pdfinfo", str(tmp_path / "doc.pdf")], capture_output=True,
                          text=True, check=True).stdout
    assert re.search(r"^Pages:\s+1$", info, flags=re.M), info
    assert pdf_qr_codes(pdf, tmp_path) == [url]  # scans: all of it is on the page
    text = pdf_text(pdf, tmp_path)
    assert "核验码" in text and "110（公安机关）" in text and "第1版" in text.replace(" ", "")


@pytest.mark.parametrize("name", [
    "ئابدۇرېھىم ئابلىمىت",  # Uyghur (Arabic script)
    "ཚེ་རིང་དོན་གྲུབ",  # Tibetan
    "ᠪᠠᠲᠤ",  # traditional Mongolian
    "ꆈꌠꁱꂷ",  # Yi
    "Ғалия Әлібек",  # Kazakh (Cyrillic letters Noto Sans CJK lacks)
    "阿卜杜热合曼·ئابدۇرېھىم",
])
def test_a_name_in_any_of_chinas_scripts_is_printed(name: str, tmp_path: Path) -> None:
    """Names are printed in the script they are written in (fonts-noto-core as fallbacks,
    HarfBuzz shaping): a Uyghur, Tibetan, Mongolian, Yi or Kazakh child's name never comes
    out blank or with letters missing."""
    body = content.push_body(_alert(), "public", "https://n/a.xml", "110（公安机关）", 1000, NOW,
                            verify_base="https://v.example.cn")
    body["child"]["name"] = name
    pdf = poster.alert_poster(body, "https://v.example.cn/verify?code=X", "Homeward", NOW,
                              "Asia/Shanghai")
    printed = re.sub(r"[\s\u202a-\u202e\u2066-\u2069]", "", pdf_text(pdf, tmp_path))
    assert re.sub(r"\s", "", name) in printed


@pytest.mark.parametrize(("words", "address"), [
    ("身穿红色外套\n" * 12, "英雄中路"), ("红\n" * 333, "英雄中路"),
    ("穿红衣服" * 250, "山西省长治市潞州区英雄中路" * 15),
    ("x\n" * 500, "路口\n" * 66),
])
def test_no_description_or_address_the_model_accepts_overflows_the_poster(
        words: str, address: str, tmp_path: Path) -> None:
    image = io.BytesIO()
    Image.new("RGB", (300, 400), (200, 120, 40)).save(image, format="JPEG")
    body = content.push_body(_alert(), "public", "https://n/a.xml", "110（公安机关）", 1000, NOW,
                            verify_base="https://v.example.cn")
    body["child"]["description"] = words[:1000]
    body["last_seen"]["address"] = address[:200]
    pdf = poster.alert_poster(body, "https://v.example.cn/verify?code=X", "Homeward", NOW,
                              "Asia/Shanghai", photo=image.getvalue())
    (tmp_path / "doc.pdf").write_bytes(pdf)
    info = subprocess.run(["pdfinfo", str(tmp_path / "doc.pdf")], capture_output=True,
                          text=True, check=True).stdout
    assert re.search(r"^Pages:\s+1$", info, flags=re.M), info
    assert pdf_qr_codes(pdf, tmp_path) == ["https://v.example.cn/verify?code=X"]
