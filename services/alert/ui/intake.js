// The operator's intake form: fill during the call, submit once, never lose or double a report.
"use strict";
HW.words({
  title: "失踪儿童报案登记", sec_child: "一、失踪人员", sec_seen: "二、最后出现", sec_circ: "三、经过", sec_reporter: "四、报案人",
  subject: "对象", subject_child: "儿童（未满18周岁）", subject_woman: "疑似被拐妇女", name: "姓名", sex: "性别", male: "男", female: "女", unknown: "不详",
  id_number: "身份证号（可选）", phone_hint: "手机、带区号座机（可加“转”分机）或境外号码（带 +国家/地区代码）均可",
  birth_date: "出生日期", age: "年龄（不知出生日期时）", height: "身高（厘米）", weight: "体重（公斤）", description: "衣着与体貌特征",
  photo_upload: "上传照片", photo_urls: "照片链接（每行一个）", seen_at: "时间", province: "省", city: "市", county: "区县", address: "详细地址",
  lat: "纬度（可选）", lon: "经度（可选）", kind: "情形", k_missing: "走失/失联", k_abduction: "疑似被拐", k_stolen: "被盗抢", k_runaway: "离家出走", k_lost: "迷路",
  serious: "重特大案件", suspect: "嫌疑人特征", vehicle: "车辆", companions: "同行人", notes: "其他情况", r_name: "姓名", r_phone: "电话", r_relation: "与失踪人关系",
  release: "立即向社会公开发布（需发布权限）", exercise: "演练", submit: "提交报案", submit_hint: "提交后立即获得案件编号；网络中断时自动重试，不会重复立案。",
  datum: "坐标系", datum_wgs84: "WGS-84（GPS、浏览器定位）", datum_gcj02: "GCJ-02（高德、腾讯地图）", datum_bd09: "BD-09（百度地图）",
  place_replaced: "行政区划代码 {given}（{given_name}）已于 {year} 年撤销，已按现行代码 {code}（{name}）受理", place_conflict: "地点信息不一致：已按{src}确定管辖 {code}，指挥台会看到各项差异",
  src_region_code: "行政区划代码", src_address: "地址", src_coordinates: "坐标",
  case_no: "案件编号", st_accepted: "已受理（已落盘）", st_published: "已发布到系统", st_leader: "专案组长已指定", st_hubs: "交通枢纽已推送",
  new_report: "登记新的报案", choose: "请选择", retrying: "网络中断，报案已保存在本页，正在重试（第 {n} 次）……", restored: "已恢复上次未送达的报案，正在重新提交。",
  leader_is: "专案组长：{organ} {title} {name}", hubs_n: "交通枢纽已推送 {n} 个", uploading: "正在上传照片……", upload_failed: "照片上传失败：{msg}", too_long: "共 {n} 字，超出上限 {max} 字",
  fix_fields: "请修改标红的项目。", sending: "提交中……",
}, {
  title: "Missing child report intake", sec_child: "1. Missing person", sec_seen: "2. Last seen", sec_circ: "3. Circumstances", sec_reporter: "4. Reporter",
  subject: "Subject", subject_child: "Child (under 18)", subject_woman: "Woman suspected trafficked", name: "Name", sex: "Sex", male: "Male", female: "Female", unknown: "Unknown",
  id_number: "ID number (optional)", phone_hint: "Mobile, landline with area code (extension after 转/ext), or a number outside the mainland with its +country code",
  birth_date: "Birth date", age: "Age (if birth date unknown)", height: "Height (cm)", weight: "Weight (kg)", description: "Clothing and features",
  photo_upload: "Upload photo", photo_urls: "Photo URLs (one per line)", seen_at: "Time", province: "Province", city: "City", county: "County / district", address: "Address",
  lat: "Latitude (optional)", lon: "Longitude (optional)", kind: "Kind", k_missing: "Missing / uncontactable", k_abduction: "Suspected abduction", k_stolen: "Stolen", k_runaway: "Runaway", k_lost: "Lost",
  serious: "Especially serious", suspect: "Suspect", vehicle: "Vehicle", companions: "Companions", notes: "Other notes", r_name: "Name", r_phone: "Phone", r_relation: "Relation",
  release: "Release to the public now (needs release permission)", exercise: "Drill", submit: "File report", submit_hint: "You get the case number at once; a network failure is retried without filing twice.",
  datum: "Datum", datum_wgs84: "WGS-84 (GPS, browser location)", datum_gcj02: "GCJ-02 (Amap, Tencent maps)", datum_bd09: "BD-09 (Baidu maps)",
  place_replaced: "Region code {given} ({given_name}) was retired in {year}: filed under the current code {code} ({name})", place_conflict: "Place parts disagree: jurisdiction from the {src}, {code}; the commander sees every part",
  src_region_code: "region code", src_address: "address", src_coordinates: "coordinates",
  case_no: "Case number", st_accepted: "Accepted (on disk)", st_published: "Published", st_leader: "Leader assigned", st_hubs: "Hubs pushed",
  new_report: "File another report", choose: "Choose", retrying: "Network down: the report is kept in this page, retrying (attempt {n})…", restored: "Restored an unsent report; submitting it again.",
  leader_is: "Case-group leader: {organ} {title} {name}", hubs_n: "{n} transport hubs pushed", uploading: "Uploading photo…", upload_failed: "Photo upload failed: {msg}", too_long: "{n} characters, over the limit of {max}",
  fix_fields: "Please correct the fields in red.", sending: "Sending…",
});

const $ = (sel) => document.querySelector(sel);
const form = $("#report");
let pending = null;      // {key, body}: what is being sent, kept until an answer comes
let polling = null;

function field(name) { return form.elements.namedItem(name); }
function value(name) { const el = field(name); return el ? (el.type === "checkbox" ? el.checked : el.value.trim()) : ""; }
function optional(obj, key, v, num) { if (v !== "" && v !== null) obj[key] = num ? Number(v) : v; }

function collect() {
  const child = { name: value("child.name"), sex: value("child.sex") };
  optional(child, "birth_date", value("child.birth_date"));
  optional(child, "id_number", value("child.id_number"));
  optional(child, "age", value("child.age"), true);
  optional(child, "height_cm", value("child.height_cm"), true);
  optional(child, "weight_kg", value("child.weight_kg"), true);
  child.description = value("child.description");
  child.photo_urls = value("child.photo_urls").split(/\s+/).filter(Boolean);
  const seen = { at: value("last_seen.at") ? HW.withZone(value("last_seen.at")) : "", address: value("last_seen.address") };
  optional(seen, "region_code", value("last_seen.region_code"));
  optional(seen, "lat", value("last_seen.lat"), true);
  optional(seen, "lon", value("last_seen.lon"), true);
  if (seen.lat !== undefined) seen.datum = value("last_seen.datum");
  return {
    subject: value("subject"), child, last_seen: seen,
    circumstances: { kind: value("circumstances.kind"), especially_serious: value("circumstances.especially_serious"),
      suspect: value("circumstances.suspect"), vehicle: value("circumstances.vehicle"),
      companions: value("circumstances.companions"), notes: value("circumstances.notes") },
    reporter: { name: value("reporter.name"), phone: value("reporter.phone"), relation: value("reporter.relation") },
    release: { public: value("release.public") }, exercise: value("exercise"),
  };
}

function fill(body) {
  const set = (name, v) => { const el = field(name); if (!el || v === undefined || v === null) return; if (el.type === "checkbox") el.checked = !!v; else el.value = v; };
  set("subject", body.subject);
  for (const [k, v] of Object.entries(body.child)) set(`child.${k}`, k === "photo_urls" ? v.join("\n") : v);
  set("last_seen.at", body.last_seen.at ? body.last_seen.at.slice(0, 16) : "");
  for (const k of ["address", "region_code", "lat", "lon", "datum"]) set(`last_seen.${k}`, body.last_seen[k]);
  for (const [k, v] of Object.entries(body.circumstances)) set(`circumstances.${k}`, v);
  for (const [k, v] of Object.entries(body.reporter)) set(`reporter.${k}`, v);
  set("release.public", body.release.public); set("exercise", body.exercise);
}

// ---- field errors, next to the field they name ----
function errorSlot(path) {
  const top = path.split(".").slice(0, 2).join(".");
  let slot = document.querySelector(`[data-error-for="${path}"]`) || document.querySelector(`[data-error-for="${top}"]`);
  const el = field(path) || field(top);
  if (!slot && el) { slot = document.createElement("span"); slot.className = "error"; slot.dataset.errorFor = el.name; el.closest("label").appendChild(slot); }
  if (!slot && path.startsWith("last_seen")) slot = document.querySelector('[data-error-for="last_seen"]');
  return { slot, el };
}
function showErrors(error) {
  const details = error.details || [{ field: error.field || "body", message: error.message }];
  let first = null, placed = false;
  for (const d of details) {
    const path = d.field === "last_seen.region_code" ? "last_seen" : d.field;
    const { slot, el } = errorSlot(path);
    const text = d.message.replace(/^[\w.]+: /, "");
    if (slot) { slot.textContent = slot.textContent ? `${slot.textContent}；${text}` : text; placed = true; }
    if (el) { el.classList.add("invalid"); first = first || el; }
  }
  const banner = $("#form-error");
  banner.textContent = placed ? HW.t("fix_fields") : error.message;
  banner.classList.remove("hidden");
  if (first) first.focus();
}

// ---- submit with the same Idempotency-Key until an answer comes ----
async function submit(ev) {
  ev?.preventDefault();
  HW.clearErrors(form);
  const body = collect();
  if (!pending || JSON.stringify(pending.body) !== JSON.stringify(body)) pending = { key: HW.uuid(), body };
  sessionStorage.setItem("hw.pending", JSON.stringify(pending));
  $("#submit").disabled = true; $("#submit").textContent = HW.t("sending");
  let attempt = 0;
  try {
    for (;;) {
      let res;
      try {
        res = await HW.api("/api/v1/reports", { method: "POST", body: pending.body, headers: { "Idempotency-Key": pending.key } });
      } catch (network) {
        res = null;
      }
      if (res && res.status < 500) { $("#net").classList.add("hidden"); return answered(res); }
      attempt += 1;
      $("#net").textContent = HW.t("retrying", { n: attempt });
      $("#net").classList.remove("hidden");
      await HW.sleep(Math.min(1000 * 2 ** Math.min(attempt, 4), 15000));
    }
  } finally {
    $("#submit").disabled = false; $("#submit").textContent = HW.t("submit");
  }
}

function showPlace(place) {
  const notes = [];
  const r = place && place.region_code_replaced;
  if (r) notes.push(HW.t("place_replaced", { given: r.given, given_name: r.given_name, year: r.year, code: r.region_code, name: r.name }));
  const c = place && place.conflict;
  if (c) notes.push(HW.t("place_conflict", { src: HW.t("src_" + c.chosen), code: c.region_code }));
  $("#place-note").textContent = notes.join("；");
  $("#place-note").classList.toggle("hidden", !notes.length);
}

function answered(res) {
  if (res.status === 202) {
    sessionStorage.removeItem("hw.pending");
    const answer = res.json;
    pending = null;
    form.classList.add("hidden");
    $("#result").classList.remove("hidden");
    $("#case-no").textContent = answer.case_id;
    showPlace(answer.place);
    $("#st-accepted").classList.add("done");
    follow(answer.report_id);
    return;
  }
  if (res.status === 401) { if (HW.session.enabled) { HW.session.ended(); return; } HW.token = ""; showSignin(HW.t("token_bad")); return; }
  showErrors(res.json?.error || { message: `HTTP ${res.status}` });
}

async function follow(reportId) {
  clearInterval(polling);
  const until = Date.now() + 5 * 60 * 1000;
  const tick = async () => {
    if (Date.now() > until) { clearInterval(polling); return; }
    let res;
    try { res = await HW.api(`/api/v1/reports/${reportId}`); } catch { return; }
    if (!res.ok) return;
    const r = res.json, p = r.progress || {};
    $("#st-published").classList.toggle("done", r.status === "published");
    if (p.leader) {
      $("#st-leader").classList.add("done");
      $("#leader").textContent = HW.t("leader_is", { organ: p.leader.organ_name, title: p.leader.title, name: p.leader.name });
    }
    if (p.hubs_pushed > 0) { $("#st-hubs").classList.add("done"); $("#st-hubs").textContent = HW.t("hubs_n", { n: p.hubs_pushed }); }
    if (r.status === "published" && p.leader && p.hubs_pushed > 0) clearInterval(polling);
  };
  polling = setInterval(tick, 1000);
  tick();
}

// ---- region picker: province → city → county, from the service's region data ----
async function options(select, parent) {
  select.innerHTML = `<option value="">${HW.t("choose")}</option>`;
  if (parent === null) return [];
  const res = await HW.api(parent ? `/api/v1/regions?parent=${parent}` : "/api/v1/regions");
  const list = res.ok ? res.json : [];
  for (const r of list) select.insertAdjacentHTML("beforeend", `<option value="${r.code}" data-level="${r.level}">${r.name}</option>`);
  return list;
}
function setRegion() {
  field("last_seen.region_code").value = $("#county").value || $("#city").value || $("#province").value;
}
async function onProvince() {
  const code = $("#province").value;
  const kids = await options($("#city"), code || null);
  const direct = kids.length && kids.every(k => k.level === "county");  // 北京, 上海…: no prefecture level
  $("#city-wrap").classList.toggle("hidden", !!direct);
  if (direct) { await options($("#county"), code); $("#county").innerHTML = $("#city").innerHTML; }
  else await options($("#county"), null);
  setRegion();
}
async function onCity() { await options($("#county"), $("#city").value || null); setRegion(); }

function uploadPhoto() { return HW.uploadPhoto($("#photo-file"), field("child.photo_urls"), $("#net")); }

function showSignin(message) {
  $("#signin").classList.remove("hidden");
  form.classList.add("hidden");
  $("#token-error").textContent = message || "";
}
function signedIn() {
  const c = HW.claims();
  if (!c || (c.exp && c.exp * 1000 < Date.now())) { HW.token = ""; showSignin(c ? HW.t("token_bad") : ""); return false; }
  $("#who").textContent = HW.who(c);
  $("#signin").classList.add("hidden"); $("#signout").classList.remove("hidden");
  form.classList.remove("hidden");
  return true;
}

function reset() {
  form.reset(); pending = null; clearInterval(polling);
  field("last_seen.at").value = HW.localNow();
  $("#result").classList.add("hidden"); form.classList.remove("hidden");
  document.querySelectorAll(".steps li").forEach(li => li.classList.remove("done"));
  HW.apply($("#result")); $("#leader").textContent = "";
  field("child.name").focus();
}

document.addEventListener("DOMContentLoaded", async () => {
  HW.apply();
  document.querySelector("[data-lang-switch]").addEventListener("click", () => HW.toggleLang());
  $("#signin-btn").addEventListener("click", () => HW.signInClicked(signedIn));
  $("#signout").addEventListener("click", () => HW.session.signOut());
  document.addEventListener("hw:signed-out", () => { form.classList.add("hidden"); $("#signout").classList.add("hidden"); $("#who").textContent = ""; });
  $("#new-report").addEventListener("click", reset);
  $("#province").addEventListener("change", onProvince);
  $("#city").addEventListener("change", onCity);
  $("#county").addEventListener("change", setRegion);
  $("#photo-file").addEventListener("change", uploadPhoto);
  HW.limitLengths(form);
  form.addEventListener("submit", submit);
  field("last_seen.at").value = HW.localNow();
  await options($("#province"), "");
  await options($("#city"), null); await options($("#county"), null);
  if (!(await HW.session.begin("intake")) || !signedIn()) return;
  const saved = sessionStorage.getItem("hw.pending");
  if (saved) {  // a submit that never got an answer: same body, same key
    pending = JSON.parse(saved);
    fill(pending.body);
    $("#net").textContent = HW.t("restored"); $("#net").classList.remove("hidden");
    submit();
  }
});
