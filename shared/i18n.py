"""Error messages in the caller's language: zh-CN by default, English on `Accept-Language: en`.

Messages are keyed by the pydantic error type or by a rule code of shared.report."""

from __future__ import annotations

from typing import Any

ZH, EN = "zh-CN", "en"

MESSAGES: dict[str, tuple[str, str]] = {
    # type: (zh-CN, en)
    "missing": ("必填", "is required"),
    "string_too_short": ("不能为空或过短（至少 {min_length} 个字符）",
                         "is empty or too short (at least {min_length} characters)"),
    "string_too_long": ("过长（最多 {max_length} 个字符）", "is too long (at most {max_length} characters)"),
    "string_pattern_mismatch": ("格式不正确", "has the wrong format"),
    "string_type": ("必须是文本", "must be text"),
    "enum": ("取值无效，可选：{expected}", "is not one of {expected}"),
    "literal_error": ("取值无效，可选：{expected}", "is not one of {expected}"),
    "greater_than_equal": ("不能小于 {ge}", "must be at least {ge}"),
    "less_than_equal": ("不能大于 {le}", "must be at most {le}"),
    "greater_than": ("必须大于 {gt}", "must be greater than {gt}"),
    "less_than": ("必须小于 {lt}", "must be less than {lt}"),
    "int_parsing": ("必须是整数", "must be a whole number"),
    "int_type": ("必须是整数", "must be a whole number"),
    "int_from_float": ("必须是整数", "must be a whole number"),
    "float_parsing": ("必须是数字", "must be a number"),
    "float_type": ("必须是数字", "must be a number"),
    "bool_parsing": ("必须是 true 或 false", "must be true or false"),
    "bool_type": ("必须是 true 或 false", "must be true or false"),
    "date_from_datetime_parsing": ("日期格式不正确（YYYY-MM-DD）", "is not a date (YYYY-MM-DD)"),
    "date_parsing": ("日期格式不正确（YYYY-MM-DD）", "is not a date (YYYY-MM-DD)"),
    "date_type": ("日期格式不正确（YYYY-MM-DD）", "is not a date (YYYY-MM-DD)"),
    "datetime_from_date_parsing": ("时间格式不正确（ISO 8601，如 2026-11-22T09:30:00+08:00）",
                                   "is not a time (ISO 8601, e.g. 2026-11-22T09:30:00+08:00)"),
    "datetime_parsing": ("时间格式不正确（ISO 8601，如 2026-11-22T09:30:00+08:00）",
                         "is not a time (ISO 8601, e.g. 2026-11-22T09:30:00+08:00)"),
    "datetime_type": ("时间格式不正确", "is not a time"),
    "timezone_aware": ("时间必须带时区（如 +08:00）", "needs a time zone (e.g. +08:00)"),
    "url_parsing": ("不是有效的链接", "is not a valid URL"),
    "url_scheme": ("链接只能是 http 或 https", "must be an http or https URL"),
    "url_too_long": ("链接过长", "is too long a URL"),
    "url_type": ("不是有效的链接", "is not a valid URL"),
    "too_long": ("项目过多（最多 {max_length} 项）", "has too many items (at most {max_length})"),
    "list_type": ("必须是列表", "must be a list"),
    "model_type": ("必须是对象", "must be an object"),
    "model_attributes_type": ("必须是对象", "must be an object"),
    "dict_type": ("必须是对象", "must be an object"),
    "extra_forbidden": ("不是可接受的字段", "is not an accepted field"),
    "json_invalid": ("请求体不是合法的 JSON", "the body is not valid JSON"),
    "unauthenticated": ("需要有效的访问令牌（{reason}）", "a valid bearer token is required ({reason})"),
    "forbidden": ("角色 {role} 无权执行此操作（需要 {needs}）", "role {role} may not do this (needs {needs})"),
    "not_found": ("未找到 {what}", "no {what}"),
    # shared.report rules
    "phone_format": ("不是有效的电话号码（手机如 139-0000-1111，座机带区号如 0355-202-1234 转 801，"
                     "境外号码带国家或地区代码如 +852 9123 4567）",
                     "is not a telephone number (a mobile such as 139-0000-1111, a landline with "
                     "its area code such as 0355-202-1234 ext 801, or +852 9123 4567 with its "
                     "country code)"),
    "birth_date_or_age": ("请填写出生日期或年龄", "give birth_date or age"),
    "lat_lon_pair": ("纬度和经度须同时填写", "lat and lon go together"),
    "place_required": ("请填写行政区划代码、经纬度或地址", "give region_code, lat/lon or an address"),
    "place_unresolved": ("无法确定失踪地所在区县，请填写区县（行政区划代码）{hint}",
                         "the place cannot be resolved to a county: give the county "
                         "(region_code){hint}"),
    "coordinates_required": ("该区县没有已知的驻地坐标，请在地图上标出最后出现的位置（经纬度）{hint}",
                             "no seat point is known for this county: give the coordinates "
                             "(a map pin) of where the child was last seen{hint}"),
    "unknown_region": ("不是现行的行政区划代码", "is not a current administrative division code"),
    "seen_in_future": ("最后见到的时间不能晚于现在", "must not be in the future"),
    "tip_in_future": ("目击时间不能晚于现在", "must not be in the future"),
    "before_birth": ("最后见到的时间早于出生日期", "is before the birth date"),
    "not_a_minor": ("儿童报案须未满 18 周岁；疑似被拐妇女请选择 subject=woman",
                    "a child report is for someone under 18; file a woman suspected trafficked "
                    "with subject=woman"),
    "woman_sex": ("subject=woman 仅适用于妇女或女童", "subject=woman is for a woman or girl"),
    "birth_in_future": ("出生日期不能晚于今天", "must not be in the future"),
    "id_format": ("身份证号应为 18 位：17 位数字加 1 位数字或 X",
                  "an ID number is 17 digits followed by a digit or X"),
    "id_checksum": ("身份证号校验位不符（GB 11643），请核对每一位数字",
                    "the check character does not match (GB 11643); check each digit"),
    "id_birth_date": ("身份证号中的出生日期不是有效日期",
                      "the birth date inside the ID number is not a real date"),
    "id_birth_mismatch": ("身份证号中的出生日期（{encoded}）与所填出生日期 child.birth_date（{given}）"
                          "不符，请核对两者",
                          "encodes birth date {encoded}, but child.birth_date is {given}; check "
                          "both"),
    "release_forbidden": ("无权在报案时申请公开发布（需要 release 权限）",
                          "requesting public release at intake needs the release permission"),
    "idempotency_conflict": ("同一 Idempotency-Key 已用于内容不同的报案",
                             "this Idempotency-Key was used with a different body"),
    "below_leader_level": ("须由专案组长所在公安机关或其上级办理：{what}",
                           "only the case leader's organ level or above may do this: {what}"),
    "confirm_required": ("该儿童的协查已公开发布，请以 confirm: true 确认解除：{what}",
                         "the child's alert is public; confirm with confirm: true: {what}"),
    "rate_limited": ("提交过于频繁，请 {retry_after} 秒后再试",
                     "too many tips; try again in {retry_after} s"),
    # public tips (issue 12)
    "case_closed": ("该案件已结案，不再接收线索", "this case is closed and takes no more tips"),
    "photo_url_credentials": ("照片链接不能包含用户名或密码（链接会随预警公开发布），请提供不含它们的链接",
                              "a photo link must not contain a user name or password (it is "
                              "published with the alert); give a link without them"),
    "case_purged": ("该案件的个人信息已按保留期限销毁，无法据此重新开启查找；如孩子仍下落不明，请重新报案"
                    "（将组建新的专案组）",
                    "this case's personal data was purged after its retention period, so its "
                    "search cannot be reopened; if the child is missing, file a new report (it "
                    "forms a new case group)"),
    # alert `PATCH /api/v1/reports/{report_id}` (issue 18): before the case group only
    "case_group_formed": ("案件 {case_id} 的专案组已成立，请通过 {amend_at} 修改儿童信息",
                          "the case group of {case_id} is formed: amend the child's details "
                          "at {amend_at}"),
    "nothing_amended": ("请至少填写一个要修改的字段：{fields}",
                        "name at least one field to amend: {fields}"),
    "progress_unavailable": ("暂时无法确认专案组是否已成立，请稍后重试",
                             "cannot tell yet whether the case group is formed; try again"),
    "tip_cap_reached": ("该案件的线索已达上限，请直接拨打 110",
                        "this case has reached its limit of tips; call 110 directly"),
    # place (issue 11; services/alert/place.py)
    "region_code_split": ("行政区划代码 {given}（{name}）已于 {year} 年撤销并分设为 {candidates}："
                          "请填写地址或坐标，或直接填写现行代码",
                          "region code {given} ({name}) was retired in {year} and split into "
                          "{candidates}: give the address or coordinates, or the current code"),
    "region_code_retired": ("行政区划代码 {given}（{name}）已于 {year} 年撤销，现行区划无法确定："
                            "请填写现行代码",
                            "region code {given} ({name}) was retired in {year} and its "
                            "successor is not known: give the current code"),
    "outside_mainland_jurisdiction": (
        "该地点在香港、澳门或台湾，不属内地公安机关管辖，本系统不为其指定办案机关。请由受理地县级"
        "公安机关立案，经省级公安机关报公安部，通过内地与港澳警务联络机制（台湾：依《海峡两岸"
        "共同打击犯罪及司法互助协议》联系窗口）请求协查",
        "the place is in Hong Kong, Macao or Taiwan, outside mainland jurisdiction; no organ is "
        "assigned there. The receiving county bureau files the case and asks, through its "
        "provincial bureau and the Ministry of Public Security, for assistance over the "
        "mainland–Hong Kong/Macao police liaison channel (Taiwan: the contact window of the "
        "Cross-Strait Joint Crime-Fighting and Judicial Mutual Assistance Agreement)"),
    "body_too_large": ("请求体过大（最多 {limit} 字节）",
                       "the body is too large (at most {limit} bytes)"),
    "too_many_streams": ("同时打开的实时连接过多，请 {retry_after} 秒后再试",
                         "too many live streams open; try again in {retry_after} s"),
    "unsafe_url": ("该地址不允许用于推送（协议不在允许列表，或主机解析到非公网地址）",
                   "this URL may not be pushed to (scheme not allowed, or the host resolves to "
                   "a non-public address)"),
    "subscriber_exists": ("该枢纽已登记；如需新密钥请调用 rotate-secret",
                          "this hub is already registered; use rotate-secret for a new secret"),
    "outside_region": ("不在您的辖区 {region} 内", "is outside your region {region}"),
    "no_region": ("无法由位置确定行政区划，请填写 region_code",
                  "no region for this location; give region_code"),

    # alerts anyone can verify (issue 17; services/notify/verify.py)
    "verify_active": ("真实有效的协查：本平台发布，仍在查找。请核对下方信息，有线索请拨打官方电话。",
                      "Genuine and active: issued by this platform, the search goes on. Check "
                      "the details below and call the official number with any lead."),
    "verify_restricted": ("真实的协查，目前仅限公安机关和交通枢纽，未向社会公开。请勿转发，有线索请"
                          "拨打官方电话。",
                          "Genuine, but restricted to police and transport hubs, not published to "
                          "the public. Please do not forward it; call the official number with "
                          "any lead."),
    "verify_ended": ("已找到，请停止转发。", "Found — please stop sharing."),
    "verify_withdrawn": ("该协查已撤销，请停止转发。", "Withdrawn — please stop sharing."),
    "verify_unknown": ("未找到该核验码：这不是本平台发布的协查。请核对号码；转发来的寻人启事若无法"
                       "核验，请勿拨打其中的电话或转账，可拨打 110 向公安机关核实。",
                       "No alert of this platform has this code. Check the code; if a forwarded "
                       "appeal cannot be verified, do not call its numbers or send money — "
                       "call 110 to check with the police."),
    "verify_malformed": ("核验码为 10 位字母或数字（如 7K3QZ-M0C4D）",
                         "a verification code is 10 letters or digits (e.g. 7K3QZ-M0C4D)"),
    "rate_limited_verify": ("查询过于频繁，请 {retry_after} 秒后再试",
                            "too many lookups; try again in {retry_after} s"),

    # release with a preview (issue 17 §4; shared/release.py)
    "content_changed": ("预览之后内容已变化，请重新预览后再发布",
                        "the content changed since the preview; preview again before releasing"),
    "preview_unavailable": ("暂时无法生成发布预览：{what}", "no release preview: {what}"),
    # sightings: triage and local checks (issue 16)
    "check_in_own_region": ("核查地区在本案管辖范围内，由本专案组自行核查：{what}",
                            "the check region is the case's own; its group checks there: {what}"),
    "same_case": ("线索不能关联到本案自身", "a tip cannot be linked to its own case"),
    "not_check_region": ("该核查任务不属于您的辖区：{what}",
                         "the check is not for your region: {what}"),
    "check_closed": ("该核查任务已反馈，不能重复反馈", "the check was reported already"),
    "already_member": ("该单位已作为协作成员加入专案组：{what}",
                       "that organ already cooperates on the case: {what}"),
    "no_organ": ("该地区没有对应的公安机关：{what}", "no public security organ there: {what}"),

    # unidentified children, candidates, DNA, placement (issue 16)
    "organisation_required": ("请填写报告单位（接警员代为登记时必填）",
                              "give the reporting organisation (required when an operator files)"),
    "age_range_order": ("表面年龄上限不能小于下限", "the apparent age's max is below its min"),
    "receiving_organisation_required": ("交由民政部门安置时须填写接收单位",
                                        "placement with civil affairs needs the receiving "
                                        "organisation"),
    "not_a_candidate": ("{what} 不是本案的比对候选", "{what} is not a candidate of this case"),
    "dna_transition": ("样本状态只能按顺序推进，不能跳过或回退：已采集 → 已入库 → 已比对 → 比中/未比中",
                       "a sample moves on in order, nothing skipped or undone: collected → "
                       "entered → compared → match / no_match"),
    "dna_record_required": ("被找到儿童的样本比中时须注明其来历不明儿童登记编号",
                            "a found child's sample reported as a match needs its record_id"),
}


def language(accept_language: str | None) -> str:
    """zh-CN unless the caller prefers English over Chinese."""
    best, best_q = ZH, -1.0
    for part in (accept_language or "").split(","):
        tag, _, params = part.strip().partition(";")
        q = 1.0
        if params.strip().startswith("q="):
            try:
                q = float(params.strip()[2:])
            except ValueError:
                q = 0.0
        tag = tag.strip().lower()
        if tag.startswith(("en", "zh")) and q > best_q:
            best, best_q = (EN if tag.startswith("en") else ZH), q
    return best


def message(code: str, lang: str, fallback: str = "", **context: Any) -> str:
    pair = MESSAGES.get(code)
    if pair is None:
        return fallback or code
    template = pair[1] if lang == EN else pair[0]
    try:
        return template.format(**context)
    except (KeyError, IndexError):
        return fallback or template
