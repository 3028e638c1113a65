// The hub duty desk: this hub's alerts live, loud until acknowledged; a sighting files a tip;
// a cancelled alert collapses and its personal data is dropped from the page.
"use strict";
HW.words({
  title: "交通枢纽值班台", waiting: "等待协查通报……", live: "● 实时", reconnecting: "○ 重新连接中……",
  flag: "协查", exercise: "演练", since: "已失踪 {t}", last_seen: "最后出现", clothing: "衣着体貌", suspect: "嫌疑人",
  vehicle: "车辆", contact: "联系", radius: "范围 {km} 公里", ack: "确认收到", acked: "已确认 {at}", sighting: "报告目击",
  s_where: "地点", s_what: "看到的情况", s_contact: "联系电话", cancel: "取消", send: "发送", tip_sent: "线索已提交（编号 {id}）",
  cancelled_found: "已找到", cancelled_false: "已撤销", cancelled_note: "该协查已解除，个人信息已移除。", age: "{n}岁",
  male: "男", female: "女", unknown: "不详", ack_failed: "确认失败：{msg}",
  out_of_service: "本站已停止接收协查推送（管理员停用，或接收地址失效）。请联系管理员恢复。",
}, {
  title: "Transport hub duty desk", waiting: "Waiting for alerts…", live: "● live", reconnecting: "○ reconnecting…",
  flag: "ALERT", exercise: "DRILL", since: "missing {t}", last_seen: "Last seen", clothing: "Clothing and features", suspect: "Suspect",
  vehicle: "Vehicle", contact: "Contact", radius: "radius {km} km", ack: "Acknowledge", acked: "Acknowledged {at}", sighting: "Report a sighting",
  s_where: "Where", s_what: "What you saw", s_contact: "Your phone", cancel: "Cancel", send: "Send", tip_sent: "Tip filed ({id})",
  cancelled_found: "Found", cancelled_false: "Withdrawn", cancelled_note: "This alert was lifted; personal data removed.", age: "{n} years",
  male: "male", female: "female", unknown: "unknown", ack_failed: "Acknowledgement failed: {msg}",
  out_of_service: "This station no longer receives alerts (taken out of service by an admin, or its receiver is gone). Ask an admin to restore it.",
});

const CONFIG = window.HW_CONFIG || { alert_url: "" };
const $ = (s) => document.querySelector(s);
const e = HW.escape;
const alerts = new Map();   // alert_id -> latest push (or cancellation)
let hub = null;             // {hub_id, name, location}

function ageOf(child) {
  if (child.age !== undefined && child.age !== null) return child.age;
  if (!child.birth_date) return null;
  const b = new Date(child.birth_date), n = new Date();
  return n.getFullYear() - b.getFullYear() - ((n.getMonth() < b.getMonth() || (n.getMonth() === b.getMonth() && n.getDate() < b.getDate())) ? 1 : 0);
}

function card(a) {
  if (a.cancelled) {
    const word = a.reason === "false_report" ? HW.t("cancelled_false") : HW.t("cancelled_found");
    return `<article class="alert cancelled" data-alert="${e(a.alert_id)}" data-state="cancelled">
      <div><h2>${e(word)} · ${e(a.case_id)}</h2><p class="muted">${e(HW.t("cancelled_note"))}</p></div></article>`;
  }
  const c = a.child || {}, seen = a.last_seen || {}, circ = a.circumstances || {};
  const photo = (c.photo_urls || [])[0];
  const age = ageOf(c);
  return `<article class="alert ${a.acked ? "" : "unacked"}" data-alert="${e(a.alert_id)}" data-state="${a.acked ? "acked" : "unacked"}">
    ${photo ? `<img src="${e(photo)}" alt="">` : `<div class="photo-none">—</div>`}
    <div>
      <h2><span class="flag">${e(a.status === "Exercise" ? HW.t("exercise") : HW.t("flag"))}</span>${e(c.name || "")}
        <small class="muted">${e(HW.t(c.sex || "unknown"))}${age !== null ? " · " + e(HW.t("age", { n: age })) : ""}${c.height_cm ? ` · ${e(c.height_cm)}cm` : ""}</small></h2>
      <div class="muted">${e(a.case_id)} · <span data-since="${e(seen.at || a.issued_at)}"></span> · ${e(HW.t("radius", { km: a.radius_km }))}</div>
      <dl>
        <dt>${HW.t("last_seen")}</dt><dd>${e(seen.address || "")} ${seen.at ? e(HW.when(seen.at)) : ""}</dd>
        <dt>${HW.t("clothing")}</dt><dd>${e(c.description || "")}</dd>
        ${circ.suspect ? `<dt>${HW.t("suspect")}</dt><dd>${e(circ.suspect)}</dd>` : ""}
        ${circ.vehicle ? `<dt>${HW.t("vehicle")}</dt><dd>${e(circ.vehicle)}</dd>` : ""}
        <dt>${HW.t("contact")}</dt><dd>${e(a.contact || "")}</dd>
      </dl>
      ${a.acked ? `<p class="muted">${e(HW.t("acked", { at: a.acked }))}</p>` : `<button type="button" data-ack="${e(a.delivery_id)}">${HW.t("ack")}</button>`}
      <button type="button" class="secondary" data-sighting="${e(a.case_id)}">${HW.t("sighting")}</button>
      <p class="error" data-msg></p>
    </div></article>`;
}

function render() {
  const list = [...alerts.values()].sort((x, y) => (!!x.cancelled - !!y.cancelled) || (new Date(y.issued_at) - new Date(x.issued_at)));
  showWaiting();
  $("#alerts").innerHTML = list.map(card).join("");
  tick();
}
function tick() { document.querySelectorAll("[data-since]").forEach(el => { el.textContent = HW.t("since", { t: HW.since(el.dataset.since) }); }); }

function onPush(_type, body) {
  if (!body || !body.alert_id) return;
  if (body.type === "homeward.alert.cancelled.v1" || body.msg_type === "Cancel") {
    // Keep nothing personal: replace the whole record with what the cancellation carries.
    alerts.set(body.alert_id, { alert_id: body.alert_id, case_id: body.case_id, cancelled: true,
      reason: body.reason, issued_at: body.issued_at || new Date().toISOString() });
  } else {
    const before = alerts.get(body.alert_id);
    if (before && before.cancelled) return;
    alerts.set(body.alert_id, { ...body, acked: before && before.version === body.version ? before.acked : null });
  }
  render();
}

async function ack(deliveryId, button) {
  const res = await HW.api(`/api/v1/deliveries/${encodeURIComponent(deliveryId)}/ack`, { method: "POST" });
  const a = [...alerts.values()].find(x => x.delivery_id === deliveryId);
  if (res.ok && a) { a.acked = HW.when(new Date().toISOString()); render(); }
  else button.closest(".alert").querySelector("[data-msg]").textContent = HW.t("ack_failed", { msg: res.json?.error?.message || res.status });
}

async function sighting(caseId, button) {
  const dialog = $("#sighting");
  const form = dialog.querySelector("form");
  form.reset();
  form.elements.address.value = hub?.name || "";
  $("#sighting-error").textContent = "";
  HW.apply(dialog);
  dialog.showModal();
  dialog.onclose = async () => {
    if (dialog.returnValue !== "ok") return;
    const loc = hub?.location || {};
    const body = { case_id: caseId, seen_at: new Date().toISOString(),
      location: { lat: loc.lat ?? 0, lon: loc.lon ?? 0, address: form.elements.address.value },
      description: form.elements.description.value, contact: form.elements.contact.value };
    const res = await HW.api(`${CONFIG.alert_url}/api/v1/tips`, { method: "POST", body });
    const msg = button.closest(".alert").querySelector("[data-msg]");
    msg.textContent = res.ok ? HW.t("tip_sent", { id: res.json.tip_id }) : (res.json?.error?.message || `HTTP ${res.status}`);
  };
}

function signedIn() {
  const c = HW.claims();
  if (!c || (c.exp && c.exp * 1000 < Date.now()) || !c.hub_id) {
    HW.token = ""; $("#signin").classList.remove("hidden"); $("#token-error").textContent = c ? HW.t("token_bad") : ""; return false;
  }
  $("#who").textContent = HW.who(c);
  $("#signin").classList.add("hidden"); $("#signout").classList.remove("hidden"); $("#desk").classList.remove("hidden");
  return true;
}

// Who this hub is, and whether it is in service: a station taken out (by an admin, or by a 410
// from its receiver) gets no pushes, and its desk must say so rather than wait in silence.
async function refreshHub() {
  const c = HW.claims();
  if (!c || !c.hub_id) return;
  const me = await HW.api(`/api/v1/hubs/${encodeURIComponent(c.hub_id)}`);
  if (!me.ok) return;
  hub = me.json;
  $("#who").textContent = `${hub.name} · ${HW.who(c)}`;
  $("#out-of-service").classList.toggle("hidden", hub.active !== false);
  showWaiting();
}

// "Waiting for alerts" only while none is shown and the station is in service (out of service,
// nothing is on its way).
function showWaiting() {
  $("#waiting").classList.toggle("hidden", alerts.size > 0 || hub?.active === false);
}

async function start() {
  const c = HW.claims();
  await refreshHub();
  setInterval(refreshHub, 60_000);
  const current = await HW.api(`/api/v1/hubs/${encodeURIComponent(c.hub_id)}/alerts`);
  if (current.ok) for (const body of current.json.alerts || []) onPush("alert", body);
  HW.stream(`/api/v1/hubs/${encodeURIComponent(c.hub_id)}/stream`, onPush, (s) => { $("#live").textContent = HW.t(s); });
  setInterval(tick, 1000);
}

document.addEventListener("DOMContentLoaded", async () => {
  HW.apply();
  document.querySelector("[data-lang-switch]").addEventListener("click", () => HW.toggleLang());
  document.addEventListener("hw:lang", render);
  $("#signin-btn").addEventListener("click", () => HW.signInClicked(() => { if (signedIn()) start(); }));
  $("#signout").addEventListener("click", () => HW.session.signOut());
  document.addEventListener("hw:signed-out", () => { $("#desk").classList.add("hidden"); $("#signout").classList.add("hidden"); $("#who").textContent = ""; });
  $("#alerts").addEventListener("click", (ev) => {
    const a = ev.target.closest("[data-ack]"); if (a) ack(a.dataset.ack, a);
    const s = ev.target.closest("[data-sighting]"); if (s) sighting(s.dataset.sighting, s);
  });
  if (await HW.session.begin("hub") && signedIn()) start();
});
