// The unidentified-child form (来历不明儿童, 强制报告; issue 16): filed once, retried with the
// same Idempotency-Key until an answer comes, errors shown next to the field they name.
"use strict";
HW.words({
  u_title: "来历不明儿童登记（强制报告）", u_record_no: "登记编号", u_new: "登记另一名儿童", u_submit: "提交登记",
  u_accepted: "已受理（已落盘），系统正在与在查失踪儿童案件比对，结果推送至双方指挥员。",
  u_intro: "医护、教师、救助机构、交通枢纽工作人员及民警发现无监护人陪同、疑似被拐的儿童，请立即登记（002 §二㈠3. 强制报告；§三㈢ 来历不明儿童登记、报告、比对）。",
  u_sec_child: "一、儿童情况", u_sec_found: "二、发现时间和地点", u_sec_circ: "三、经过与报告单位",
  sex: "性别", male: "男", female: "女", unknown: "不详", u_age_min: "表面年龄（最小，岁）", u_age_max: "表面年龄（最大，岁）",
  height: "身高（厘米）", u_description: "衣着、体貌特征、胎记，孩子说的话", photo_upload: "上传照片", photo_urls: "照片链接（每行一个）",
  u_found_at: "发现时间", address: "详细地址", u_region_code: "行政区划代码（可选）", lat: "纬度（可选）", lon: "经度（可选）",
  u_circumstances: "发现经过、同行人情况", u_organisation: "报告单位", exercise: "演练",
  fix_fields: "请修改标红的项目。", sending: "提交中……", retrying: "网络中断，登记已保存在本页，正在重试（第 {n} 次）……",
  uploading: "正在上传照片……", upload_failed: "照片上传失败：{msg}", too_long: "共 {n} 字，超出上限 {max} 字",
}, {
  u_title: "Child without a guardian (mandatory report)", u_record_no: "Record number", u_new: "Register another child", u_submit: "Submit record",
  u_accepted: "Accepted (on disk). The system compares it with open missing-child cases and tells both regions' commanders.",
  u_intro: "Medical, school, shelter and transport staff and police who meet a child without a guardian who may be trafficked register the child here at once (002 §2(1)3 mandatory reporting; §3(3) registration and comparison).",
  u_sec_child: "1. The child", u_sec_found: "2. When and where found", u_sec_circ: "3. Circumstances and reporting organisation",
  sex: "Sex", male: "Male", female: "Female", unknown: "Unknown", u_age_min: "Apparent age (from, years)", u_age_max: "Apparent age (to, years)",
  height: "Height (cm)", u_description: "Clothing, features, marks, what the child says", photo_upload: "Upload photo", photo_urls: "Photo URLs (one per line)",
  u_found_at: "Found at", address: "Address", u_region_code: "Region code (optional)", lat: "Latitude (optional)", lon: "Longitude (optional)",
  u_circumstances: "How the child was found, who was with them", u_organisation: "Reporting organisation", exercise: "Drill",
  fix_fields: "Please correct the fields in red.", sending: "Sending…", retrying: "Network down: the record is kept in this page, retrying (attempt {n})…",
  uploading: "Uploading photo…", upload_failed: "Photo upload failed: {msg}", too_long: "{n} characters, over the limit of {max}",
});

const $ = (sel) => document.querySelector(sel);
const form = $("#record");
let pending = null;  // {key, body}: what is being sent, kept until an answer comes

function field(name) { return form.elements.namedItem(name); }
function value(name) { const el = field(name); return el ? (el.type === "checkbox" ? el.checked : el.value.trim()) : ""; }
function number(name) { const v = value(name); return v === "" ? null : Number(v); }

function collect() {
  const found = { at: value("found.at") ? HW.withZone(value("found.at")) : "", address: value("found.address") };
  if (value("found.region_code")) found.region_code = value("found.region_code");
  if (number("found.lat") !== null) found.lat = number("found.lat");
  if (number("found.lon") !== null) found.lon = number("found.lon");
  const body = {
    sex: value("sex"), apparent_age: { min: number("apparent_age.min"), max: number("apparent_age.max") },
    description: value("description"), found, circumstances: value("circumstances"),
    photo_urls: value("photo_urls").split("\n").map(s => s.trim()).filter(Boolean), exercise: value("exercise"),
  };
  if (number("height_cm") !== null) body.height_cm = number("height_cm");
  if (value("organisation")) body.organisation = value("organisation");
  return body;
}

function showErrors(error) {
  const details = error.details || [{ field: error.field || "body", message: error.message }];
  let first = null, placed = false;
  for (const d of details) {
    const el = field(d.field) || (d.field === "found" ? null : field(d.field.split(".").slice(0, 2).join(".")));
    let slot = document.querySelector(`[data-error-for="${d.field}"]`);
    if (!slot && el) { slot = document.createElement("span"); slot.className = "error"; slot.dataset.errorFor = d.field; el.closest("label").appendChild(slot); }
    if (!slot && d.field.startsWith("found")) slot = document.querySelector('[data-error-for="found"]');
    const text = d.message.replace(/^[\w.]+: /, "");
    if (slot) { slot.textContent = slot.textContent ? `${slot.textContent}；${text}` : text; placed = true; }
    if (el) { el.classList.add("invalid"); first = first || el; }
  }
  $("#form-error").textContent = placed ? HW.t("fix_fields") : error.message;
  $("#form-error").classList.remove("hidden");
  if (first) first.focus();
}

async function submit(ev) {
  ev?.preventDefault();
  HW.clearErrors(form);
  const body = collect();
  if (!pending || JSON.stringify(pending.body) !== JSON.stringify(body)) pending = { key: HW.uuid(), body };
  $("#submit").disabled = true; $("#submit").textContent = HW.t("sending");
  let attempt = 0;
  try {
    for (;;) {
      let res = null;
      try {
        res = await HW.api("/api/v1/unidentified-children", { method: "POST", body: pending.body, headers: { "Idempotency-Key": pending.key } });
      } catch (network) { res = null; }
      if (res && res.status < 500) { $("#net").classList.add("hidden"); return answered(res); }
      attempt += 1;
      $("#net").textContent = HW.t("retrying", { n: attempt }); $("#net").classList.remove("hidden");
      await HW.sleep(Math.min(1000 * 2 ** Math.min(attempt, 4), 15000));
    }
  } finally {
    $("#submit").disabled = false; $("#submit").textContent = HW.t("u_submit");
  }
}

function answered(res) {
  if (res.status === 202) {
    pending = null;
    form.classList.add("hidden");
    $("#result").classList.remove("hidden");
    $("#record-no").textContent = res.json.record_id;
    return;
  }
  if (res.status === 401) { if (HW.session.enabled) { HW.session.ended(); return; } HW.token = ""; showSignin(HW.t("token_bad")); return; }
  showErrors(res.json?.error || { message: `HTTP ${res.status}` });
}

function uploadPhoto() { return HW.uploadPhoto($("#photo-file"), field("photo_urls"), $("#net")); }

function showSignin(message) {
  $("#signin").classList.remove("hidden"); form.classList.add("hidden");
  $("#token-error").textContent = message || "";
}
function signedIn() {
  const c = HW.claims();
  if (!c || (c.exp && c.exp * 1000 < Date.now())) { HW.token = ""; showSignin(c ? HW.t("token_bad") : ""); return false; }
  $("#who").textContent = HW.who(c);
  $("#signin").classList.add("hidden"); $("#signout").classList.remove("hidden");
  form.classList.remove("hidden");
  if (c.org) { field("organisation").value = c.org; field("organisation").readOnly = true; }  // a mandated reporter's own
  return true;
}
function reset() {
  form.reset(); pending = null;
  field("found.at").value = HW.localNow();
  $("#result").classList.add("hidden"); form.classList.remove("hidden");
  signedIn();
}

document.addEventListener("DOMContentLoaded", async () => {
  HW.apply();
  document.querySelector("[data-lang-switch]").addEventListener("click", () => HW.toggleLang());
  $("#signin-btn").addEventListener("click", () => HW.signInClicked(signedIn));
  $("#signout").addEventListener("click", () => HW.session.signOut());
  document.addEventListener("hw:signed-out", () => { form.classList.add("hidden"); $("#signout").classList.add("hidden"); $("#who").textContent = ""; });
  $("#new-record").addEventListener("click", reset);
  $("#photo-file").addEventListener("change", uploadPhoto);
  HW.limitLengths(form);
  form.addEventListener("submit", submit);
  field("found.at").value = HW.localNow();
  if (!(await HW.session.begin("intake")) || !signedIn()) return;
});
