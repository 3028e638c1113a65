// The case's DNA samples (issue 16): references and statuses only. A sample is recorded as
// collected and moved on one step at a time (collected → entered → compared → match / no_match);
// the family's sample entered completes the DNA duty. Loaded after console.js (`hw:case`).
"use strict";
HW.words({
  dna_title: "DNA 样本（只记录编号与状态，不存储遗传信息）", dna_none: "暂无样本", dna_add: "登记采样",
  dna_family: "家属", dna_found_child: "被找到儿童", dna_donor: "与儿童关系（如 母亲）", dna_taken_by: "采样人", dna_place: "采样地点",
  dna_lab: "实验室编号", dna_record: "来历不明儿童登记编号（比中时必填）",
  dna_collected: "已采集", dna_entered: "已录入打拐DNA信息库", dna_compared: "已比对", dna_match: "比中", dna_no_match: "未比中",
  dna_next: "标记为：{s}", q_dna_add: "登记新采集的血样：",
}, {
  dna_title: "DNA samples (references and statuses only, no genetic data)", dna_none: "No samples", dna_add: "Record a sample",
  dna_family: "family", dna_found_child: "found child", dna_donor: "Relation to the child (e.g. mother)", dna_taken_by: "Taken by", dna_place: "Where taken",
  dna_lab: "Lab reference", dna_record: "Unidentified-child record (for a match)",
  dna_collected: "collected", dna_entered: "entered into the DNA database", dna_compared: "compared", dna_match: "match", dna_no_match: "no match",
  dna_next: "Mark: {s}", q_dna_add: "Record a sample just taken:",
});
const DNA_NEXT = { collected: ["entered"], entered: ["compared"], compared: ["match", "no_match"], match: [], no_match: [] };

function renderSamples(c) {
  if (c.case_id !== selected || !$("#case .actions")) return;
  let card = $("#dna");
  if (!card) { card = document.createElement("div"); card.className = "card"; card.id = "dna"; $("#case .actions").before(card); }
  const samples = c.dna_samples || [], live = c.status !== "closed";
  card.innerHTML = `<h3>${HW.t("dna_title")}</h3>` + (samples.map(s => `
    <div class="sample" data-sample="${e(s.sample_id)}">
      <p><b>${e(s.sample_id)}</b> · ${e(HW.t("dna_" + s.subject))} ${e(s.donor)} · ${e(s.lab_reference)} · <b class="status">${e(HW.t("dna_" + s.status))}</b></p>
      <p class="muted">${s.history.map(h => `${e(HW.t("dna_" + h.status))} ${e(HW.when(h.at))} ${e(h.by)}`).join(" → ")}</p>
      ${live ? DNA_NEXT[s.status].map(n => `<button type="button" class="secondary" data-dna-step="${e(n)}">${e(HW.t("dna_next", { s: HW.t("dna_" + n) }))}</button>`).join(" ") : ""}
    </div>`).join("") || `<p class="muted">${HW.t("dna_none")}</p>`) +
    (live ? `<p><button type="button" class="secondary" data-dna-add>${HW.t("dna_add")}</button></p>` : "");
}

async function postSample(body) {
  const c = cases.get(selected);
  const res = await HW.api(`/api/v1/cases/${encodeURIComponent(c.case_id)}/dna-samples`, { method: "POST", body });
  if (!res.ok) { alertBox(res.json?.error?.message || `HTTP ${res.status}`); return; }
  await refresh(c.case_id);
}

async function addSample() {
  const dialog = await ask(HW.t("q_dna_add"), `<select name="subject"><option value="family">${HW.t("dna_family")}</option><option value="found_child">${HW.t("dna_found_child")}</option></select>
    <label>${HW.t("dna_donor")}<input name="donor"></label><label>${HW.t("dna_taken_by")}<input name="taken_by" required></label>
    <label>${HW.t("dna_place")}<input name="place" required></label><label>${HW.t("dna_lab")}<input name="lab_reference" required></label>
    <label>${HW.t("dna_record")}<input name="record_id"></label>`);
  if (!dialog) return;
  const val = (n) => dialog.querySelector(`[name=${n}]`)?.value.trim() || "";
  const body = { subject: val("subject"), donor: val("donor"), taken_by: val("taken_by"), place: val("place"),
                 lab_reference: val("lab_reference"), taken_at: new Date().toISOString() };
  if (val("record_id")) body.record_id = val("record_id");
  await postSample(body);
}

async function stepSample(sampleId, status) {
  const body = { sample_id: sampleId, status };
  if (status === "match") {
    const c = cases.get(selected), known = (c.dna_samples || []).find(s => s.sample_id === sampleId);
    if (known && known.subject === "found_child" && !known.record_id) {
      const dialog = await ask(HW.t("dna_record"), `<input name="record_id" required>`);
      if (!dialog) return;
      body.record_id = dialog.querySelector("[name=record_id]").value.trim();
    }
  }
  await postSample(body);
}

document.addEventListener("hw:case", (ev) => renderSamples(ev.detail));
document.addEventListener("click", (ev) => {
  if (ev.target.closest("[data-dna-add]")) { addSample(); return; }
  const step = ev.target.closest("[data-dna-step]");
  if (step) stepSample(step.closest("[data-sample]").dataset.sample, step.dataset.dnaStep);
});
