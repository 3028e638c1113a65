// Sightings on the commander console (issue 16): each tip with where it lies from the last-seen
// point, its plausibility and a hub's mark, triaged in a dialog; a notice when a tip arrives on
// the live stream; local checks (核查) of the commander's county, reported back from here.
// Loaded before console.js, which calls Sightings.tipRow / .onEvent / .checksCard / .loadChecks.
"use strict";
HW.words({
  triage: "研判", t_verdict: "研判结论", credible: "可信", not_credible: "不可信", duplicate: "重复",
  t_check_region: "指派核查（县级区划代码，可空）", t_linked: "关联其他案件（案件编号，可空）", q_triage: "研判线索：",
  hub_sighting: "枢纽目击", public_tip: "群众线索", p_near: "就近", p_ground: "可到达", p_air: "仅乘飞机可达", p_implausible: "时间距离不合理",
  inside: "半径内", outside: "半径外", verdict_by: "{v}（{by}）", new_tip: "新线索", checks: "核查任务", no_checks: "暂无核查任务",
  check_for: "核查 {id} · {organ} · 时限 {due}", check_open: "待反馈", check_reported: "已反馈", report: "反馈核查结果", cooperate: "邀请加入专案组（协作）",
  q_report: "核查结果：", confirmed: "属实", not_found: "未发现", note_only: "情况说明", contact: "联系方式",
  N: "正北", NE: "东北", E: "正东", SE: "东南", S: "正南", SW: "西南", W: "正西", NW: "西北", away: "{dir} {km} 公里",
}, {
  triage: "Triage", t_verdict: "Verdict", credible: "credible", not_credible: "not credible", duplicate: "duplicate",
  t_check_region: "Assign a local check (county code, optional)", t_linked: "Link to another case (case id, optional)", q_triage: "Triage the tip:",
  hub_sighting: "hub sighting", public_tip: "public tip", p_near: "nearby", p_ground: "reachable", p_air: "by air only", p_implausible: "implausible time/distance",
  inside: "inside radius", outside: "outside radius", verdict_by: "{v} ({by})", new_tip: "New tip", checks: "Local checks", no_checks: "No local checks",
  check_for: "check {id} · {organ} · due {due}", check_open: "awaiting report", check_reported: "reported", report: "Report the check", cooperate: "Add to the case group (cooperation)",
  q_report: "Result of the check:", confirmed: "confirmed", not_found: "not found", note_only: "note", contact: "Contact",
  N: "N", NE: "NE", E: "E", SE: "SE", S: "S", SW: "SW", W: "W", NW: "NW", away: "{km} km {dir}",
});

const Sightings = (() => {
  const e = HW.escape;
  const scope = (code) => { let c = code || ""; while (c.endsWith("00")) c = c.slice(0, -2); return c; };
  const within = (area, code) => (code || "").startsWith(scope(area));
  const myRegion = () => (HW.claims() || {}).region || "";

  // A small map: the last-seen point in the middle, the current radius, the sighting by its
  // distance and bearing (north up).
  function miniMap(a) {
    if (a.distance_km == null || a.bearing_deg == null) return "";
    const span = Math.max(a.radius_km || 1, a.distance_km, 1) * 1.1, k = 28 / span;
    const rad = (a.bearing_deg * Math.PI) / 180;
    const x = 30 + a.distance_km * Math.sin(rad) * k, y = 30 - a.distance_km * Math.cos(rad) * k;
    const colour = a.plausibility === "implausible" ? "#b3261e" : "#0b5cad";
    return `<svg class="tip-map" width="60" height="60" viewBox="0 0 60 60" role="img" aria-label="${e(HW.t("away", { dir: HW.t(a.compass || "N"), km: a.distance_km }))}">
      <circle cx="30" cy="30" r="${(a.radius_km * k).toFixed(1)}" fill="#eef3fa" stroke="#9db4d3"/>
      <circle cx="30" cy="30" r="2.5" fill="#1d2330"/><circle cx="${x.toFixed(1)}" cy="${y.toFixed(1)}" r="3.5" fill="${colour}"/>
      <text x="30" y="8" font-size="7" text-anchor="middle" fill="#5b6475">N</text></svg>`;
  }

  function tipRow(t) {
    const a = t.assessment || {};
    const badges = [
      t.source === "hub" ? `<span class="red">${e(HW.t("hub_sighting"))} ${e(t.hub_id || "")}</span>` : `<span>${e(HW.t("public_tip"))}</span>`,
      a.plausibility ? `<span class="${a.plausibility === "implausible" ? "red" : ""}" data-plausibility="${e(a.plausibility)}">${e(HW.t("p_" + a.plausibility))}${a.speed_kmh != null && a.plausibility === "implausible" ? ` ${e(a.speed_kmh)} km/h` : ""}</span>` : "",
      a.distance_km != null ? `<span>${e(HW.t("away", { dir: HW.t(a.compass || "N"), km: a.distance_km }))}</span>` : "",
      a.inside_radius != null ? `<span>${e(HW.t(a.inside_radius ? "inside" : "outside"))} ${e(a.radius_km)} km</span>` : "",
      t.triage ? `<span class="verdict" data-verdict="${e(t.triage.verdict)}">${e(HW.t("verdict_by", { v: HW.t(t.triage.verdict), by: t.triage.by }))}</span>` : "",
      t.check_id ? `<span>${e(t.check_id)}</span>` : "",
    ].join("");
    return `<p class="tip" data-tip="${e(t.tip_id)}">${miniMap(a)}${e(t.seen_at ? HW.when(t.seen_at) : "")} · ${e(t.description || "")} ${t.location ? e(t.location.address || "") : ""}
      ${t.contact ? `<span class="muted">${e(HW.t("contact"))} ${e(t.contact)}</span>` : ""}
      <span class="badges">${badges}</span>
      <button type="button" class="secondary" data-triage="${e(t.tip_id)}">${e(HW.t("triage"))}</button></p>`;
  }

  // Triage: verdict, why, and optionally a local check elsewhere or a link to another case.
  async function triage(caseId, tipId, ask, done, fail) {
    const dialog = await ask(HW.t("q_triage"), `<select name="verdict">${["credible", "not_credible", "duplicate"].map(v => `<option value="${v}">${e(HW.t(v))}</option>`).join("")}</select>
      <label>${e(HW.t("reason"))}<input name="reason" required></label>
      <label>${e(HW.t("t_check_region"))}<input name="check_region" pattern="\\d{6}"></label>
      <label>${e(HW.t("t_linked"))}<input name="linked_case_id"></label>`);
    if (!dialog) return;
    const val = (n) => dialog.querySelector(`[name=${n}]`)?.value.trim() || "";
    const body = { verdict: val("verdict"), reason: val("reason") };
    if (val("check_region")) body.check_region = val("check_region");
    if (val("linked_case_id")) body.linked_case_id = val("linked_case_id");
    const res = await HW.api(`/api/v1/cases/${encodeURIComponent(caseId)}/tips/${encodeURIComponent(tipId)}/triage`, { method: "POST", body });
    if (res.ok) done(res.json); else fail(res.json?.error?.message || `HTTP ${res.status}`);
  }

  // A tip on the live stream: a notice at the top, with where it lies and whether it can be.
  function onEvent(type, data) {
    if (type !== "homeward.case.tip_attached.v1" || !data || !data.data) return;
    const d = data.data.details || {};
    const a = d.assessment || {};
    const tip = d.tip || {};
    const box = document.createElement("div");
    box.className = `banner ${a.plausibility === "implausible" ? "warn" : "ok"} notice`;
    box.dataset.case = data.case_id;
    box.textContent = `${HW.t("new_tip")} · ${data.case_id} · ${tip.source === "hub" ? HW.t("hub_sighting") + " " + (tip.hub_id || "") + " · " : ""}${a.summary || ""}`;
    const area = document.querySelector("#notices");
    if (!area) return;
    area.prepend(box);
    while (area.children.length > 5) area.lastElementChild.remove();
  }

  // Local checks of the commander's county (for cases of other regions too).
  let checks = [];
  async function loadChecks(render) {
    const res = await HW.api("/api/v1/checks");
    if (!res.ok) return;
    checks = res.json || [];
    render(checks);
  }
  function checksList() {
    return checks.length ? checks.map(t => `<li data-case="${e(t.case_id)}" class="check"><div class="id">${e(t.case_id)}</div>
      <div class="meta">${e(HW.t("check_for", { id: t.check.check_id, organ: t.check.organ_name, due: HW.when(t.check.due_at) }))}</div></li>`).join("")
      : `<li class="muted">${e(HW.t("no_checks"))}</li>`;
  }

  function checksCard(c) {
    if (!(c.checks || []).length) return "";
    const mine = myRegion();
    return `<div class="card" id="checks-card"><h3>${e(HW.t("checks"))}</h3>${c.checks.map(k => `
      <p data-check="${e(k.check_id)}">${e(HW.t("check_for", { id: k.check_id, organ: k.organ_name, due: HW.when(k.due_at) }))} · ${e(k.assignee)} ·
        <b>${e(HW.t(k.status === "open" ? "check_open" : "check_reported"))}</b>${k.status === "open" && k.overdue_count ? ` <span class="red">${e(HW.t("overdue"))} ×${e(k.overdue_count)}</span>` : ""}${k.result ? ` · ${e(HW.t(k.result === "note" ? "note_only" : k.result))} ${e(k.note || "")}` : ""}
        ${k.status === "open" && within(mine, k.region_code) ? `<button type="button" class="secondary" data-report="${e(k.check_id)}">${e(HW.t("report"))}</button>` : ""}
        ${within(mine, c.region_code) && !(c.members || []).some(m => m.duty === "cooperation" && m.organ_code === k.organ_code) ? `<button type="button" class="secondary" data-cooperate="${e(k.check_id)}">${e(HW.t("cooperate"))}</button>` : ""}</p>`).join("")}</div>`;
  }

  async function report(caseId, checkId, ask, done, fail) {
    const dialog = await ask(HW.t("q_report"), `<select name="result">${["confirmed", "not_found", "note"].map(v => `<option value="${v}">${e(HW.t(v === "note" ? "note_only" : v))}</option>`).join("")}</select>
      <label>${e(HW.t("note"))}<input name="note"></label>`);
    if (!dialog) return;
    const body = { result: dialog.querySelector("[name=result]").value, note: dialog.querySelector("[name=note]").value };
    const res = await HW.api(`/api/v1/cases/${encodeURIComponent(caseId)}/checks/${encodeURIComponent(checkId)}/report`, { method: "POST", body });
    if (res.ok) done(res.json); else fail(res.json?.error?.message || `HTTP ${res.status}`);
  }

  async function cooperate(caseId, checkId, done, fail) {
    const res = await HW.api(`/api/v1/cases/${encodeURIComponent(caseId)}/checks/${encodeURIComponent(checkId)}/cooperate`, { method: "POST", body: {} });
    if (res.ok) done(res.json); else fail(res.json?.error?.message || `HTTP ${res.status}`);
  }

  return { tipRow, triage, onEvent, loadChecks, checksList, checksCard, report, cooperate };
})();
