// The public verification page (issue 17): anyone types a short code, or arrives from a
// poster's QR code with ?code=..., and sees genuine-active, genuine-ended or unknown.
// No login, no inline script (the page's CSP allows scripts from this origin only).
"use strict";
HW.words({
  title: "协查真伪核验", intro: "输入寻人启事或转发消息上的核验码（或扫描海报上的二维码），核验是否为本平台发布、是否仍在查找。",
  code_label: "核验码", code_placeholder: "如 7K3QZ-M0C4D", check: "核验", last_seen: "最后出现", contact: "官方联系电话",
  issuer: "发布", poster: "下载海报（PDF）", cap: "签名的 CAP 消息", active: "真实有效", ended: "已结束", unknown: "无法核验",
  male: "男", female: "女", age: "{n}岁", height: "身高约{n}厘米", failed: "暂时无法核验，请稍后再试（{status}）",
  ended_at: "结束时间：{at}",
}, {
  title: "Verify an alert", intro: "Enter the code printed on an appeal or a forwarded message (or scan the poster's QR code) to check that this platform issued it and whether the search goes on.",
  code_label: "Verification code", code_placeholder: "e.g. 7K3QZ-M0C4D", check: "Verify", last_seen: "Last seen", contact: "Official contact",
  issuer: "Issued by", poster: "Download the poster (PDF)", cap: "Signed CAP message", active: "Genuine", ended: "Ended", unknown: "Not verified",
  male: "male", female: "female", age: "{n} years", height: "about {n} cm", failed: "Verification is unavailable; try again later ({status})",
  ended_at: "Ended: {at}",
});

const form = document.getElementById("lookup");
const input = document.getElementById("code");
const $ = id => document.getElementById(id);
let last = "";

async function lookup(code) {
  last = code;
  $("code-error").textContent = "";
  const res = await HW.api(`/api/v1/verify/${encodeURIComponent(code)}`);
  if (res.status === 422) { $("code-error").textContent = res.json?.error?.message || ""; return; }
  const verdict = $("verdict");
  $("result").classList.remove("hidden");
  $("details").classList.add("hidden");
  if (!res.ok || !res.json) {
    verdict.className = "banner err";
    verdict.textContent = res.json?.error?.message || HW.t("failed", { status: res.status });
    return;
  }
  const a = res.json;
  verdict.dataset.status = a.status;
  verdict.className = `banner ${a.status === "active" ? "ok" : a.status === "ended" ? "warn" : "err"}`;
  const head = `${HW.t(a.status)} · ${a.code}`;
  verdict.textContent = `${head}：${a.message}` + (a.ended_at_text ? ` ${HW.t("ended_at", { at: a.ended_at_text })}` : "");
  if (a.status !== "active") return;
  $("contact").textContent = a.contact || "";
  $("issuer").textContent = a.issuer || "";
  if (!a.public) return;
  const c = a.child || {};
  $("name").textContent = c.name || "";
  $("facts").textContent = [c.sex === "male" || c.sex === "female" ? HW.t(c.sex) : "", c.age != null ? HW.t("age", { n: c.age }) : "",
    c.height_cm ? HW.t("height", { n: c.height_cm }) : ""].filter(Boolean).join("，");
  $("seen").textContent = [a.last_seen?.address, a.last_seen?.at_text].filter(Boolean).join("，");
  $("description").textContent = c.description || "";
  $("poster").href = a.poster_url;
  $("cap").href = a.cap_url;
  $("details").classList.remove("hidden");
}

form.addEventListener("submit", ev => { ev.preventDefault(); if (input.value.trim()) lookup(input.value.trim()); });
document.querySelectorAll("[data-lang-switch]").forEach(b => b.addEventListener("click", () => HW.toggleLang()));
document.addEventListener("hw:lang", () => { if (last) lookup(last); });
HW.apply();
const given = new URLSearchParams(location.search).get("code");
if (given) { input.value = given; lookup(given); }
