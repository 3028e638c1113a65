// The commander console: cases of the commander's region, live; one case in detail; actions
// with confirmation. Data from dispatch's API and stream, delivery figures from notify.
"use strict";
HW.words({
  title: "失踪儿童案件指挥台", cases: "辖区案件", no_cases: "暂无案件", pick: "请选择左侧案件", cancel: "取消", confirm: "确认",
  live: "● 实时", reconnecting: "○ 重新连接中……", since: "失踪 {t}", radius: "推送半径 {km} 公里",
  status_opened: "已立案", status_active: "侦办中", status_found: "已找到", status_false_report: "虚假报案", status_closed: "已结案",
  leader: "专案组长（一长三包）", duties: "三包责任", investigation: "侦查破案", rescue: "解救", family_liaison: "安抚家属", cooperation: "协作",
  tasks: "工作清单", due: "时限", done: "已完成", overdue: "已超时", complete: "完成", escalations: "升级与督办", tips: "群众线索",
  timeline: "全程记录（只增不改）", deliveries: "推送情况", d_total: "推送总数", d_sent: "已送达", d_ack: "已确认枢纽", d_failed: "失败", spread: "推送范围与枢纽",
  d_pending: "发送中", actions: "处置", a_release: "批准向社会发布", a_escalate: "升级", a_found: "标记已找到", a_close: "结案",
  q_release: "确认批准向媒体和志愿者公开发布以下内容？", audience: "将送达", kind_hub: "枢纽", kind_media: "媒体", kind_volunteer: "志愿者", kind_member: "专案组成员",
  radius_now: "当前范围 {km} 公里", q_escalate: "升级到：", q_found: "找到情况：", q_close: "结案原因：", q_confirm_public: "该协查已公开发布：确认向所有接收方发送解除", incident: "同一事件的儿童",
  reason: "理由", note: "备注", level_city: "市级", level_province: "省级", found_safe: "平安找到", found_harmed: "找到（受伤害）",
  found_deceased: "找到（已遇害）", false_report: "虚假报案", mechanisms: "机制", rapid_search: "快速查找", homicide_mechanism: "命案机制",
  supervision: "挂牌督办", released: "已批准公开发布", member: "成员", duty: "职责", phone: "电话", no_leader: "未能指定组长",
  local_bureau: "失踪地公安机关", procuratorate: "检察机关", linked: "并案报案",
  tips_newer: "较新的线索", tips_older: "更早的线索",
  place_conflict: "地点信息不一致（请核实失踪地）", place_conflict_badge: "地点不一致", led_from: "按{src}确定管辖：{code}", src_region_code: "行政区划代码", src_address: "地址", src_coordinates: "坐标",
}, {
  title: "Missing child case console", cases: "Cases in my region", no_cases: "No cases", pick: "Pick a case on the left", cancel: "Cancel", confirm: "Confirm",
  live: "● live", reconnecting: "○ reconnecting…", since: "missing {t}", radius: "radius {km} km",
  status_opened: "opened", status_active: "active", status_found: "found", status_false_report: "false report", status_closed: "closed",
  leader: "Case-group leader (一长三包)", duties: "The three duties", investigation: "Investigation", rescue: "Rescue", family_liaison: "Family liaison", cooperation: "Cooperation",
  tasks: "Tasks", due: "Due", done: "done", overdue: "OVERDUE", complete: "Complete", escalations: "Escalations and supervision", tips: "Tips",
  timeline: "Timeline (append-only)", deliveries: "Deliveries", d_total: "pushes", d_sent: "delivered", d_ack: "hubs acknowledged", d_failed: "failed", spread: "Alert radius and hubs",
  d_pending: "in flight", actions: "Actions", a_release: "Approve public release", a_escalate: "Escalate", a_found: "Mark found", a_close: "Close case",
  q_release: "Approve releasing this content to media and volunteers?", audience: "Will reach", kind_hub: "hubs", kind_media: "media", kind_volunteer: "volunteers", kind_member: "case group members",
  radius_now: "current radius {km} km", q_escalate: "Escalate to:", q_found: "Outcome:", q_close: "Reason for closing:", q_confirm_public: "The alert is public: confirm sending its cancellation to every recipient", incident: "Children of one incident",
  reason: "Reason", note: "Note", level_city: "City", level_province: "Province", found_safe: "Found safe", found_harmed: "Found harmed",
  found_deceased: "Found deceased", false_report: "False report", mechanisms: "Mechanisms", rapid_search: "rapid search", homicide_mechanism: "homicide mechanism",
  supervision: "listed supervision", released: "public release approved", member: "Member", duty: "Duty", phone: "Phone", no_leader: "No leader assigned",
  local_bureau: "Local bureau", procuratorate: "Procuratorate", linked: "Linked reports",
  tips_newer: "Newer tips", tips_older: "Older tips",
  place_conflict: "Place parts disagree (check where the child was last seen)", place_conflict_badge: "place disagrees", led_from: "jurisdiction from the {src}: {code}", src_region_code: "region code", src_address: "address", src_coordinates: "coordinates",
});

const CONFIG = window.HW_CONFIG || { notify_url: "", tiers: [[1, 100], [2, 200], [3, 300]], max_km: 500 };
const $ = (s) => document.querySelector(s);
const cases = new Map();
let selected = null, deliveryTimer = null;
const e = HW.escape;

function radiusKm(lastSeen) {
  if (!lastSeen) return CONFIG.tiers[0][1];
  const hours = (Date.now() - new Date(lastSeen).getTime()) / 3600000;
  for (const [limit, km] of CONFIG.tiers) if (hours <= limit) return km;
  return CONFIG.max_km;
}
const isOpen = (c) => !["found", "false_report", "closed"].includes(c.status);

function renderList() {
  const list = [...cases.values()].sort((a, b) =>
    (isOpen(b) - isOpen(a)) || ((b.priority === "highest") - (a.priority === "highest")) ||
    (new Date(b.opened_at) - new Date(a.opened_at)));
  $("#no-cases").classList.toggle("hidden", list.length > 0);
  $("#case-list").innerHTML = list.map(c => `
    <li data-case="${e(c.case_id)}" class="${isOpen(c) ? (c.priority === "highest" ? "urgent" : "") : "closed"} ${c.case_id === selected ? "selected" : ""}">
      <div class="id">${e(c.case_id)}</div>
      <div><b>${e(c.child_name)}</b> · ${e(HW.t("status_" + c.status))}${c.exercise ? " · 演练/drill" : ""}</div>
      <div class="meta">${e(c.leader ? `${c.leader.organ_name} ${c.leader.name}` : HW.t("no_leader"))}</div>
      <div class="meta" data-since="${e(c.last_seen_at || c.opened_at)}"></div>
    </li>`).join("");
  tick();
}

function dutyRows(c) {
  const rows = Object.entries(c.duties || {}).map(([duty, m]) =>
    `<tr><td>${e(HW.t(duty))}</td><td>${m ? e(`${m.name}（${m.title}）`) : "—"}</td><td>${m ? e(m.organ_name || m.organ_code) : ""}</td><td>${m ? e(HW.phone(m.phone)) : ""}</td></tr>`);
  for (const m of c.members || []) {
    if (!["investigation", "rescue", "family_liaison"].includes(m.duty)) {
      rows.push(`<tr><td>${e(HW.t(m.duty))}</td><td>${e(`${m.name}（${m.title}）`)}</td><td>${e(m.organ_name || m.organ_code)}</td><td>${e(HW.phone(m.phone))}</td></tr>`);
    }
  }
  return rows.join("");
}

function renderCase() {
  const c = cases.get(selected);
  if (!c) { $("#case").innerHTML = `<p class="muted">${HW.t("pick")}</p>`; return; }
  const badges = [
    ...(c.mechanisms || []).map(m => `<span class="red">${e(HW.t(m))}</span>`),
    c.supervision ? `<span class="red">${e(HW.t("supervision"))} ${e(c.supervision)}</span>` : "",
    c.release_approved ? `<span>${e(HW.t("released"))}</span>` : "",
    c.place_conflict ? `<span class="red">${e(HW.t("place_conflict_badge"))}</span>` : "",
  ].join("");
  $("#case").innerHTML = `
    <div class="card">
      <h2>${e(c.child_name)} <span class="muted">${e(c.case_id)}</span></h2>
      <div class="badges"><span>${e(HW.t("status_" + c.status))}</span>${badges}</div>
      <p><span data-since="${e(c.last_seen_at || c.opened_at)}"></span> · <span id="radius">${e(HW.t("radius", { km: radiusKm(c.last_seen_at) }))}</span></p>
    </div>
    ${c.place_conflict ? `<div class="card" id="place-conflict"><h3 class="red">${HW.t("place_conflict")}</h3>
      <p>${e(HW.t("led_from", { src: HW.t("src_" + c.place_conflict.chosen), code: c.place_conflict.region_code }))}</p>
      ${c.place_conflict.parts.map(p => `<p>${e(HW.t("src_" + p.source))}: ${e(p.region_code || "—")} ${e(p.name || "")}${p.distance_km != null ? ` · ${e(p.distance_km)} km` : ""}</p>`).join("")}</div>` : ""}
    <div class="card"><h3>${HW.t("leader")}</h3>
      <p id="leader-line">${c.leader ? e(`${c.leader.organ_name} ${c.leader.title} ${c.leader.name} ${HW.phone(c.leader.phone)}`) : e(HW.t("no_leader"))}</p>
      <table><tr><th>${HW.t("duty")}</th><th>${HW.t("member")}</th><th></th><th>${HW.t("phone")}</th></tr>${dutyRows(c)}</table></div>
    <div class="card"><h3>${HW.t("tasks")}</h3><table id="tasks">${(c.tasks || []).map(t => `
      <tr data-due="${e(t.due_at)}" data-status="${e(t.status)}"><td>${e(HW.lang === "en" && t.title_en ? t.title_en : t.title)}</td><td>${e(t.assignee)}</td>
        <td class="due"></td><td>${t.status === "open" ? `<button type="button" class="secondary" data-complete="${e(t.task_id)}">${HW.t("complete")}</button>` : e(HW.t("done"))}</td></tr>`).join("")}</table></div>
    <div class="card"><h3>${HW.t("deliveries")}</h3><div class="figures" id="figures"></div>
      <div id="spread" class="spread"></div></div>
    <div class="card"><h3>${HW.t("escalations")}</h3>${(c.escalations || []).map(x => `<p>${e(x.level || "")} · ${e(x.reason || x.why || "")} · ${e(x.by || x.actor || "")}</p>`).join("") || "—"}</div>
    ${c.incident ? `<div class="card"><h3>${HW.t("incident")}</h3><p>${(c.incident_cases || []).map(e).join(" · ")}</p></div>` : ""}
    ${(c.links || []).length ? `<div class="card"><h3>${HW.t("linked")}</h3>${c.links.map(r => `<p>${e(r.case_id)} · ${e(r.evidence.rule)} · ${e(r.evidence.names.join(" / "))} · ${e(r.evidence.distance_km)} km · ${e(r.evidence.hours_apart)} h</p>`).join("")}</div>` : ""}
    <div class="card"><h3>${HW.t("tips")} <span class="muted" id="tips-total"></span></h3><div id="tips">—</div>
      <p><button type="button" class="secondary" data-tips="newer" hidden>${HW.t("tips_newer")}</button>
      <button type="button" class="secondary" data-tips="older" hidden>${HW.t("tips_older")}</button></p></div>
    ${Sightings.checksCard(c)}
    <div class="card actions"><h3>${HW.t("actions")}</h3>
      <button type="button" data-action="release" ${c.release_approved || !isOpen(c) ? "disabled" : ""}>${HW.t("a_release")}</button>
      <button type="button" data-action="escalate" ${isOpen(c) ? "" : "disabled"}>${HW.t("a_escalate")}</button>
      <button type="button" data-action="found" class="secondary" ${isOpen(c) ? "" : "disabled"}>${HW.t("a_found")}</button>
      <button type="button" data-action="close" class="danger" ${c.status === "closed" ? "disabled" : ""}>${HW.t("a_close")}</button></div>
    <div class="card"><h3>${HW.t("timeline")}</h3><div class="timeline"><table>${(c.timeline || []).slice().reverse().map(t =>
      `<tr><td>${e(HW.when(t.at))}</td><td>${e(t.actor)}</td><td>${e(t.action)}</td><td>${e(t.what || t.detail || "")}${t.why ? " — " + e(t.why) : ""}</td></tr>`).join("")}</table></div></div>`;
  tick();
  loadDeliveries();
  loadTips(c.case_id, tipsOffset);
  document.dispatchEvent(new CustomEvent("hw:case", { detail: c }));  // panels in their own files (candidates.js)
}

// Tips are kept beside the case (not in its document) and read a page at a time, newest first.
const TIPS_PAGE = 20;
let tipsOffset = 0;
async function loadTips(caseId, offset) {
  const res = await HW.api(`/api/v1/cases/${encodeURIComponent(caseId)}/tips?offset=${offset}&limit=${TIPS_PAGE}`);
  if (!res.ok || caseId !== selected || !$("#tips")) return;
  const page = res.json;
  tipsOffset = offset;
  $("#tips-total").textContent = page.total ? `(${page.total})` : "";
  $("#tips").innerHTML = page.items.map(Sightings.tipRow).join("") || "—";
  document.querySelector("[data-tips=newer]").hidden = offset <= 0;
  document.querySelector("[data-tips=older]").hidden = offset + page.items.length >= page.total;
}

function tick() {
  document.querySelectorAll("[data-since]").forEach(el => { el.textContent = HW.t("since", { t: HW.since(el.dataset.since) }); });
  document.querySelectorAll("#tasks tr[data-due]").forEach(row => {
    const left = (new Date(row.dataset.due) - Date.now()) / 1000;
    const open = row.dataset.status === "open";
    row.classList.toggle("overdue", open && left < 0);
    const abs = Math.abs(left), m = Math.floor(abs / 60), s = Math.floor(abs % 60);
    row.querySelector(".due").textContent = !open ? "" : left < 0 ? `${HW.t("overdue")} ${m}:${String(s).padStart(2, "0")}` : `${m}:${String(s).padStart(2, "0")}`;
  });
  const c = cases.get(selected);
  if (c && $("#radius")) $("#radius").textContent = HW.t("radius", { km: radiusKm(c.last_seen_at) });
}

// The spread of the alert, drawn by notify as SVG (tier rings, hubs by state). Shown through an
// <img> from a blob: the picture needs the bearer token, and an image runs no script.
let spreadUrl = null;
async function loadSpread(caseId) {
  const res = await fetch(`${CONFIG.notify_url}/api/v1/cases/${encodeURIComponent(caseId)}/spread.svg`,
    { headers: { Authorization: `Bearer ${HW.token}`, "Accept-Language": HW.lang === "en" ? "en" : "zh-CN" } });
  if (!res.ok || caseId !== selected || !$("#spread")) return;
  const url = URL.createObjectURL(await res.blob());
  $("#spread").innerHTML = `<img alt="${e(HW.t("spread"))}" src="${url}">`;
  if (spreadUrl) URL.revokeObjectURL(spreadUrl);
  spreadUrl = url;
}

async function loadDeliveries() {
  clearTimeout(deliveryTimer);
  const caseId = selected;
  if (!caseId || !CONFIG.notify_url) return;
  try {
    const res = await HW.api(`${CONFIG.notify_url}/api/v1/deliveries?case_id=${encodeURIComponent(caseId)}`);
    if (res.ok && caseId === selected && $("#figures")) {
      const rows = res.json.deliveries || [];
      const count = (state) => rows.filter(r => r.state === state).length;
      // Acknowledged: hubs, not deliveries. A desk acknowledges the alert as it stands, which
      // acknowledges its Alert and the Updates it has had (notify's acks.py).
      const acked = new Set(rows.filter(r => r.state === "acknowledged").map(r => r.subscriber_id)).size;
      const figures = [["d_total", rows.length], ["d_sent", count("sent") + count("acknowledged")],
        ["d_ack", acked], ["d_pending", count("pending") + count("retrying")],
        ["d_failed", count("failed") + count("dead")]];
      $("#figures").innerHTML = figures.map(([k, n]) => `<div data-figure="${k}"><b>${n}</b>${HW.t(k)}</div>`).join("");
    }
    await loadSpread(caseId);
  } catch { /* notify away: figures wait */ }
  deliveryTimer = setTimeout(loadDeliveries, 3000);
}

async function refresh(caseId) {
  const res = await HW.api(`/api/v1/cases/${encodeURIComponent(caseId)}`);
  if (res.ok) {
    cases.set(caseId, res.json);
    renderList();
    if (caseId === selected) renderCase();
  }
}

function ask(text, fieldsHtml) {
  return new Promise((resolve) => {
    const dialog = $("#confirm");
    $("#confirm-text").textContent = text;
    $("#confirm-fields").innerHTML = fieldsHtml || "";
    $("#confirm-error").textContent = "";
    HW.apply(dialog);
    dialog.onclose = () => resolve(dialog.returnValue === "ok" ? dialog : null);
    dialog.showModal();
  });
}

async function act(action, extra) {
  const c = cases.get(selected);
  const prompts = {
    release: [HW.t("q_release"), ""],
    escalate: [HW.t("q_escalate"), `<select name="level"><option value="city">${HW.t("level_city")}</option><option value="province">${HW.t("level_province")}</option></select>
      <label>${HW.t("reason")}<input name="reason" required></label>`],
    found: [HW.t("q_found"), `<select name="outcome">${["found_safe", "found_harmed", "found_deceased", "false_report", "placed_with_civil_affairs"].map(o => `<option value="${o}">${HW.t(o)}</option>`).join("")}</select>
      <label>${HW.t("receiving_organisation")}<input name="receiving_organisation"></label>
      <label>${HW.t("note")}<input name="note"></label>${c.release_approved ? `
      <label><input type="checkbox" name="confirm" required> ${HW.t("q_confirm_public")}</label>` : ""}`],
    close: [HW.t("q_close"), `<label>${HW.t("reason")}<input name="reason" required></label>`],
  };
  let [text, fields] = prompts[action];
  let preview = null;
  if (action === "release" || action === "found") {
    // Issue 17 §4: show exactly what recipients will receive (the public alert, or the
    // Cancel every recipient so far gets), and release that content only.
    const path = action === "release" ? "release-preview" : "found-preview?outcome=found_safe";
    const got = await HW.api(`/api/v1/cases/${encodeURIComponent(c.case_id)}/${path}`);
    if (!got.ok && action === "release") { alertBox(got.json?.error?.message || `HTTP ${got.status}`); return; }
    if (got.ok) {
      preview = got.json;
      const e = HW.escape;
      const who = Object.entries(preview.audience || {}).map(([k, n]) => `${e(HW.t(`kind_${k}`))} ${n}`).join(" · ") || "0";
      fields = `<pre class="preview-text">${e(preview.text)}</pre>
        <p class="muted">${e(HW.t("audience"))}：${who}${action === "release" ? ` · ${e(HW.t("radius_now", { km: preview.radius_km }))}` : ""}</p>` + fields;
    }
  }
  for (;;) {
    const dialog = await ask(text, fields);
    if (!dialog) return;
    const val = (n) => dialog.querySelector(`[name=${n}]`)?.value || "";
    const body = action === "escalate" ? { level: val("level"), reason: val("reason") }
      : action === "found" ? { outcome: val("outcome"), found_at: new Date().toISOString(), note: val("note"),
                               confirm: !!dialog.querySelector("[name=confirm]")?.checked, receiving_organisation: val("receiving_organisation") }
      : action === "close" ? { reason: val("reason") }
      : action === "release" ? { content_hash: preview.content_hash } : undefined;
    const res = await HW.api(`/api/v1/cases/${encodeURIComponent(c.case_id)}/${action}`, { method: "POST", body });
    if (res.ok) { cases.set(c.case_id, res.json); renderList(); renderCase(); return; }
    // Keep the dialog's message in front of the commander (e.g. 案件不破，专案组不撤).
    alertBox(res.json?.error?.message || `HTTP ${res.status}`);
    return;
  }
}

function alertBox(message) {
  const box = document.createElement("div");
  box.className = "banner err";
  box.id = "action-error";
  box.textContent = message;
  $("#action-error")?.remove();
  $("#case").prepend(box);
}

async function completeTask(taskId) {
  const res = await HW.api(`/api/v1/cases/${encodeURIComponent(selected)}/tasks/${encodeURIComponent(taskId)}/complete`, { method: "POST", body: {} });
  if (res.ok) { cases.set(selected, res.json); renderCase(); } else alertBox(res.json?.error?.message || `HTTP ${res.status}`);
}

function signedIn() {
  const c = HW.claims();
  if (!c || (c.exp && c.exp * 1000 < Date.now())) { HW.token = ""; $("#signin").classList.remove("hidden"); $("#token-error").textContent = c ? HW.t("token_bad") : ""; return false; }
  $("#who").textContent = HW.who(c);
  $("#signin").classList.add("hidden"); $("#signout").classList.remove("hidden"); $("#board").classList.remove("hidden");
  return true;
}

async function start() {
  const res = await HW.api("/api/v1/cases");
  if (res.status === 401) { if (HW.session.enabled) { HW.session.ended(); return; } HW.token = ""; signedIn(); return; }
  for (const c of res.json || []) cases.set(c.case_id, c);
  renderList();
  const showChecks = () => { $("#check-list").innerHTML = Sightings.checksList(); };
  Sightings.loadChecks(showChecks);
  HW.stream("/api/v1/stream", (type, data) => {
    Sightings.onEvent(type, data);
    if (type && type.startsWith("homeward.case.check_")) Sightings.loadChecks(showChecks);
    if (data && data.case_id) refresh(data.case_id);
  },
    (state) => { $("#live").textContent = HW.t(state); });
  setInterval(tick, 1000);
}

document.addEventListener("DOMContentLoaded", async () => {
  HW.apply();
  document.querySelector("[data-lang-switch]").addEventListener("click", () => HW.toggleLang());
  document.addEventListener("hw:lang", () => { renderList(); renderCase(); });
  $("#signin-btn").addEventListener("click", () => HW.signInClicked(() => { if (signedIn()) start(); }));
  $("#signout").addEventListener("click", () => HW.session.signOut());
  document.addEventListener("hw:signed-out", () => { $("#board").classList.add("hidden"); $("#signout").classList.add("hidden"); $("#who").textContent = ""; });
  $("#case-list").addEventListener("click", (ev) => {
    const li = ev.target.closest("li[data-case]");
    if (li) { selected = li.dataset.case; tipsOffset = 0; renderList(); renderCase(); }
  });
  $("#check-list").addEventListener("click", (ev) => {
    const li = ev.target.closest("li[data-case]");
    if (li) { selected = li.dataset.case; tipsOffset = 0; refresh(selected); }
  });
  $("#case").addEventListener("click", (ev) => {
    const a = ev.target.closest("[data-action]"); if (a) act(a.dataset.action);
    const t = ev.target.closest("[data-complete]"); if (t) completeTask(t.dataset.complete);
    const changed = (c) => { cases.set(c.case_id, c); renderList(); renderCase(); };
    const tr = ev.target.closest("[data-triage]"); if (tr) Sightings.triage(selected, tr.dataset.triage, ask, changed, alertBox);
    const rp = ev.target.closest("[data-report]"); if (rp) Sightings.report(selected, rp.dataset.report, ask, (c) => { changed(c); Sightings.loadChecks(() => { $("#check-list").innerHTML = Sightings.checksList(); }); }, alertBox);
    const co = ev.target.closest("[data-cooperate]"); if (co) Sightings.cooperate(selected, co.dataset.cooperate, changed, alertBox);
    const p = ev.target.closest("[data-tips]");
    if (p && selected) loadTips(selected, Math.max(0, tipsOffset + (p.dataset.tips === "older" ? TIPS_PAGE : -TIPS_PAGE)));
  });
  if (await HW.session.begin("console") && signedIn()) start();
});
