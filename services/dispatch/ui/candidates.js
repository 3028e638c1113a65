// The case's candidates (issue 16): unidentified-child records the matching rule offered, with
// score and reasons; the commander confirms one (found, and the usual Cancel). Loaded after
// console.js, whose case view announces itself with the `hw:case` event.
"use strict";
HW.words({
  cand_title: "来历不明儿童比对候选", cand_none: "暂无候选", cand_score: "匹配度 {s}%", cand_confirm: "确认为本案儿童",
  cand_confirmed: "已确认", cand_by_dna: "DNA 比中", cand_line: "{org} 登记 · 发现于 {when} · 距失踪地 {km} 公里 · 相隔 {h} 小时",
  cand_child: "{sex} · 表面年龄 {min}–{max} 岁 · 身高 {height}", q_cand_confirm: "确认登记 {id} 即本案儿童？案件将标记为已找到，并向所有接收方发送解除。",
  placed_with_civil_affairs: "交由民政部门安置", receiving_organisation: "接收单位（民政安置时必填）", male: "男", female: "女", unknown: "不详",
}, {
  cand_title: "Unidentified-child candidates", cand_none: "No candidates", cand_score: "match {s}%", cand_confirm: "Confirm as this child",
  cand_confirmed: "confirmed", cand_by_dna: "DNA match", cand_line: "filed by {org} · found {when} · {km} km from the last sighting · {h} h later",
  cand_child: "{sex} · looks {min}–{max} · height {height}", q_cand_confirm: "Confirm record {id} is this case's child? The case is marked found and every recipient gets the cancellation.",
  placed_with_civil_affairs: "Placed with civil affairs", receiving_organisation: "Receiving organisation (for civil-affairs placement)", male: "male", female: "female", unknown: "unknown",
});

async function loadCandidates(c) {
  const res = await HW.api(`/api/v1/cases/${encodeURIComponent(c.case_id)}/candidates`);
  if (!res.ok || c.case_id !== selected || !$("#case .actions")) return;
  let card = $("#candidates");
  if (!card) { card = document.createElement("div"); card.className = "card"; card.id = "candidates"; $("#case .actions").before(card); }
  const open = isOpen(c), en = HW.lang === "en";
  card.innerHTML = `<h3>${HW.t("cand_title")}</h3>` + (res.json.candidates.map(x => `
    <div class="candidate" data-record="${e(x.record_id)}">
      <p><b>${e(x.record_id)}</b> · <b class="score">${e(HW.t("cand_score", { s: Math.round(x.score * 100) }))}</b>
        ${x.status === "confirmed" ? `· <span class="ok">${e(HW.t(x.confirmed_via === "dna" ? "cand_by_dna" : "cand_confirmed"))}</span>` : ""}</p>
      <p class="muted">${e(HW.t("cand_line", { org: x.organisation, when: HW.when(x.found_at), km: Math.round(x.distance_km), h: x.hours_since }))}</p>
      <p>${e(HW.t("cand_child", { sex: HW.t(x.sex), min: x.age_min, max: x.age_max, height: x.height_cm ? x.height_cm + " cm" : "—" }))}
        ${x.record && x.record.description ? ` · ${e(x.record.description)}` : ""}</p>
      <ul class="reasons">${x.reasons.map(r => `<li data-factor="${e(r.factor)}" class="${e(r.verdict)}">${e(en && r.detail_en ? r.detail_en : r.detail)}</li>`).join("")}</ul>
      ${open && x.status === "proposed" ? `<button type="button" data-confirm-record="${e(x.record_id)}">${HW.t("cand_confirm")}</button>` : ""}
    </div>`).join("") || `<p class="muted">${HW.t("cand_none")}</p>`);
}

async function confirmCandidate(recordId) {
  const c = cases.get(selected);
  if (!c) return;
  const outcomes = ["found_safe", "found_harmed", "found_deceased", "placed_with_civil_affairs"];
  const dialog = await ask(HW.t("q_cand_confirm", { id: recordId }), `<select name="outcome">${outcomes.map(o => `<option value="${o}">${HW.t(o)}</option>`).join("")}</select>
    <label>${HW.t("receiving_organisation")}<input name="receiving_organisation"></label>
    <label>${HW.t("note")}<input name="note"></label>${c.release_approved ? `
    <label><input type="checkbox" name="confirm" required> ${HW.t("q_confirm_public")}</label>` : ""}`);
  if (!dialog) return;
  const val = (n) => dialog.querySelector(`[name=${n}]`)?.value || "";
  const res = await HW.api(`/api/v1/cases/${encodeURIComponent(c.case_id)}/candidates/${encodeURIComponent(recordId)}/confirm`, {
    method: "POST", body: { outcome: val("outcome"), note: val("note"), receiving_organisation: val("receiving_organisation"),
                            confirm: !!dialog.querySelector("[name=confirm]")?.checked } });
  if (res.ok) { cases.set(c.case_id, res.json); renderList(); renderCase(); return; }
  alertBox(res.json?.error?.message || `HTTP ${res.status}`);
}

document.addEventListener("hw:case", (ev) => loadCandidates(ev.detail));
document.addEventListener("click", (ev) => {
  const b = ev.target.closest("[data-confirm-record]");
  if (b) confirmCandidate(b.dataset.confirmRecord);
});
