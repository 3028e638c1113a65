"""The printable A4 poster of a released alert (issue 17 §3) and the notice that replaces it
once the search has ended — PDF written with fpdf2, the QR code with segno, the text in Noto
Sans CJK SC from Debian's fonts-noto-cjk, with the Noto fonts of the other scripts names are
written in (fonts-noto-core: Arabic script for Uyghur and Kazakh, Tibetan, Mongolian, Yi) as
fallbacks and HarfBuzz shaping (embedded as subsets, so the PDF's text can be read and
searched: pdftotext shows the child's name).

Content is the public push's (services.notify.content.push_body "public"): no family, reporter,
ID number or suspect; the official contact; the last-seen time in the deployment's zone
(shared.display.people_time); the short code and a QR code of the verification URL; the issuer
and the time of the version printed."""

from __future__ import annotations

import io
from datetime import datetime
from functools import lru_cache
from pathlib import Path
from typing import Any

import segno
from fontTools.ttLib import TTCollection
from fpdf import FPDF
from PIL import Image

from services.notify.content import child_age
from shared.display import people_time
from shared.text import cut
from shared.verification import display_code

NOTO_CJK = Path("/usr/share/fonts/opentype/noto/NotoSansCJK-Regular.ttc")
FAMILY = "Noto Sans CJK SC"
# The scripts names and descriptions are written in besides Chinese (Debian's fonts-noto-core):
# Uyghur and Kazakh in Arabic script, Tibetan, traditional Mongolian, Yi, and Latin/Cyrillic
# letters Noto Sans CJK lacks (Ғ, Ә in Kazakh). A character no font has still prints nothing
# (fpdf2 logs it): emoji, and the rarest CJK extension characters.
NOTO = Path("/usr/share/fonts/truetype/noto")
FALLBACKS = (("arabic", "NotoNaskhArabic-Regular.ttf"), ("tibetan", "NotoSerifTibetan-Regular.ttf"),
             ("mongolian", "NotoSansMongolian-Regular.ttf"), ("yi", "NotoSansYi-Regular.ttf"),
             ("latin", "NotoSans-Regular.ttf"))


class FontMissing(RuntimeError):
    pass


@lru_cache(maxsize=4)
def collection_index(path: Path, family: str = FAMILY) -> int:
    """Which font of the collection is `family` (the Simplified Chinese one)."""
    try:
        fonts = TTCollection(str(path)).fonts
    except OSError as exc:
        raise FontMissing(f"{path}: {exc} (install Debian's fonts-noto-cjk)") from exc
    for i, font in enumerate(fonts):
        if font["name"].getDebugName(1) == family:
            return i
    raise FontMissing(f"{path} has no {family}")


def _pdf(font: Path, fallbacks: Path = NOTO) -> FPDF:
    """An A4 page in Noto Sans CJK SC, with the other scripts' fonts as fallbacks where they
    are installed, and text shaping (HarfBuzz, uharfbuzz): Arabic-script letters join and run
    right to left, Tibetan stacks."""
    pdf = FPDF(format="A4", unit="mm")
    pdf.set_auto_page_break(auto=True, margin=15)
    pdf.set_margins(18, 15, 18)
    pdf.add_font("cjk", fname=str(font), collection_font_number=collection_index(font))
    names = []
    for name, file in FALLBACKS:
        if (fallbacks / file).is_file():
            pdf.add_font(name, fname=str(fallbacks / file))
            names.append(name)
    if names:
        pdf.set_fallback_fonts(names)
    pdf.set_text_shaping(True)
    pdf.add_page()
    return pdf


def _photo(pdf: FPDF, photo: bytes, height: float = 70.0) -> None:
    """The photo centred, `height` mm tall at most."""
    try:
        with Image.open(io.BytesIO(photo)) as image:
            image.load()
            ratio = image.width / max(image.height, 1)
            rgb = image.convert("RGB")
    except (OSError, ValueError):
        return  # not an image we can print: the poster goes out without it
    w = min(height * ratio, pdf.epw)
    h = w / ratio
    pdf.image(rgb, x=pdf.l_margin + (pdf.epw - w) / 2, y=pdf.get_y(), w=w, h=h)
    pdf.set_y(pdf.get_y() + h + 3)


def _name(pdf: FPDF, name: str, width: float) -> None:
    """The child's name centred, as large as fits one line (28 pt down to 16 pt: a long
    transliterated name, 阿卜杜热合曼·买买提依明·艾合买提江, is 18 characters), wrapped over
    lines beyond that: never cut off at the page's edge."""
    size = 28
    pdf.set_font("cjk", size=size)
    while size > 16 and pdf.get_string_width(name) > width:
        size -= 2
        pdf.set_font("cjk", size=size)
    pdf.multi_cell(width, size * 0.57, name, align="C", new_x="LMARGIN", new_y="NEXT")


def _qr_png(url: str) -> io.BytesIO:
    out = io.BytesIO()
    segno.make(url, error="m", micro=False).save(out, kind="png", scale=8, border=4)
    out.seek(0)
    return out


# How the variable middle of the poster shrinks until the whole of it, the QR code block and
# the issuer line included, stands on one A4 page: photo height (mm), text size (pt) and the
# most characters of the description printed ("…" after a cut; the full text is on the
# verification page the QR code opens).
# From the fourth layout on, the description's and the address's lines run on ("；"): twelve
# short lines cut to 80 characters are still twelve lines. The last prints no photo.
_LAYOUTS = ((70.0, 15, None), (55.0, 13, None), (40.0, 12, None), (40.0, 12, 400),
            (30.0, 11, 200), (25.0, 11, 80), (0.0, 11, 60))
# The QR code block: the code (55 mm), the gap and the issuer line under it.
_QR_SIZE, _QR_BLOCK = 55.0, 55.0 + 6 + 14


class PosterOverflow(RuntimeError):
    """Raised when not even the smallest layout fits one page: not with the report model's
    limits (description ≤ 1000, address ≤ 200 characters, however many lines; tested)."""


def alert_poster(body: dict[str, Any], verify: str, issuer: str, issued: datetime, zone: str,
                 font: Path = NOTO_CJK, photo: bytes | None = None) -> bytes:
    """The A4 poster of a public push `body` (with `short_code`); `verify` is the URL the QR
    code encodes; `issued` the time of the version printed; `photo` (JPEG/PNG/WebP bytes) the
    child's photo, printed under the name (one that cannot be decoded is left out).

    Always one page with the whole QR code on it: a long description first makes the photo
    and the text smaller, then is cut with "…" (_LAYOUTS) — a QR code pushed over the page's
    edge would not scan, and a poster in three pages is not put up."""
    for photo_h, size, limit in _LAYOUTS:
        pdf = _draw(body, verify, issuer, issued, zone, font, photo, photo_h, size, limit)
        if pdf is not None:
            return bytes(pdf.output())
    raise PosterOverflow(str(body.get("alert_id", "")))


def _run_on(text: str) -> str:
    """The lines of `text` run on as one ("；" between them)."""
    return "；".join(line.strip() for line in text.splitlines() if line.strip())


def _draw(body: dict[str, Any], verify: str, issuer: str, issued: datetime, zone: str,
          font: Path, photo: bytes | None, photo_h: float, size: int,
          limit: int | None) -> FPDF | None:
    """The poster in one layout, or None when it does not fit one page."""
    child: dict[str, Any] = body.get("child") or {}
    seen: dict[str, Any] = body.get("last_seen") or {}
    pdf = _pdf(font)
    width = pdf.epw
    pdf.set_text_color(183, 28, 28)
    pdf.set_font("cjk", size=34)
    pdf.cell(width, 16, "儿童失踪 · 寻人启事", align="C", new_x="LMARGIN", new_y="NEXT")
    pdf.set_text_color(0, 0, 0)
    _name(pdf, str(child.get("name", "")), width)
    sex = {"male": "男", "female": "女"}.get(str(child.get("sex")), "")
    facts = [sex]
    years = child_age(child, seen, zone)
    if years is not None:
        facts.append(f"{years}岁")
    if child.get("height_cm"):
        facts.append(f"身高约{child['height_cm']}厘米")
    pdf.set_font("cjk", size=14)
    pdf.cell(width, 9, "，".join(f for f in facts if f), align="C", new_x="LMARGIN",
             new_y="NEXT")
    pdf.ln(3)
    if photo is not None and photo_h > 0:
        _photo(pdf, photo, photo_h)
    at = people_time(str(seen["at"]), zone) if seen.get("at") else ""
    description = str(child.get("description", "") or "—")
    address = str(seen.get("address", ""))
    if limit is not None:
        description = cut(_run_on(description), limit)
        address = cut(_run_on(address), limit)
    lines = [("体貌特征", description),
             ("最后出现", "，".join(p for p in (address, at) if p) or "—"),
             ("联系电话", str(body.get("contact", "")))]
    line_h = size * 0.53
    for label, text in lines:
        pdf.set_font("cjk", size=13)
        pdf.set_text_color(96, 96, 96)
        pdf.cell(width, 7, label, new_x="LMARGIN", new_y="NEXT")
        pdf.set_text_color(0, 0, 0)
        pdf.set_font("cjk", size=size if label != "联系电话" else 20)
        pdf.multi_cell(width, line_h if label != "联系电话" else 8, text, new_x="LMARGIN",
                       new_y="NEXT")
        pdf.ln(2)
    pdf.set_font("cjk", size=12)
    pdf.multi_cell(width, 7, "如有线索请立即拨打上方官方电话，勿自行处置。"
                             "请勿轻信其他号码，勿转账。", new_x="LMARGIN", new_y="NEXT")
    pdf.ln(4)
    top = pdf.get_y()
    if pdf.page_no() > 1 or top + _QR_BLOCK > pdf.h - pdf.b_margin:
        return None
    pdf.image(_qr_png(verify), x=pdf.l_margin, y=top, w=_QR_SIZE, h=_QR_SIZE)
    pdf.set_xy(pdf.l_margin + _QR_SIZE + 6, top + 4)
    pdf.set_font("cjk", size=13)
    right = width - _QR_SIZE - 6
    code = display_code(str(body["short_code"]))
    pdf.multi_cell(right, 7, "扫码或登录以下网址输入核验码，核验真伪、查看是否已找到：",
                   new_x="LEFT", new_y="NEXT")
    pdf.set_font("cjk", size=22)
    pdf.multi_cell(right, 11, f"核验码 {code}", new_x="LEFT", new_y="NEXT")
    pdf.set_font("cjk", size=10)
    pdf.multi_cell(right, 6, verify, new_x="LEFT", new_y="NEXT")
    pdf.set_xy(pdf.l_margin, top + _QR_SIZE + 6)
    pdf.set_font("cjk", size=10)
    pdf.set_text_color(96, 96, 96)
    pdf.multi_cell(width, 6, f"发布：{issuer}　时间：{people_time(issued, zone)}　"
                             f"编号：{body.get('alert_id', '')} 第{body.get('version', 1)}版",
                   new_x="LMARGIN", new_y="NEXT")
    return pdf if pdf.page_no() == 1 else None


def ended_notice(code: str, withdrawn: bool, issuer: str, ended: datetime, zone: str,
                 font: Path = NOTO_CJK) -> bytes:
    """What the poster URL gives once the search has ended: no personal data."""
    pdf = _pdf(font)
    pdf.set_font("cjk", size=34)
    pdf.ln(40)
    pdf.cell(pdf.epw, 18, "该协查已撤销" if withdrawn else "孩子已找到", align="C",
             new_x="LMARGIN", new_y="NEXT")
    pdf.set_font("cjk", size=26)
    pdf.cell(pdf.epw, 16, "请停止转发、撤下海报", align="C", new_x="LMARGIN", new_y="NEXT")
    pdf.ln(10)
    pdf.set_font("cjk", size=13)
    pdf.multi_cell(pdf.epw, 8, f"核验码 {display_code(code)}　{issuer}　"
                               f"{people_time(ended, zone)}", align="C")
    return bytes(pdf.output())
