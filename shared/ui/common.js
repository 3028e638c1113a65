// Homeward consoles: language, sign-in with a bearer token (kept for this browser session
// only), and a fetch wrapper that reports network failures separately from answers.
"use strict";
const HW = {
  lang: localStorage.getItem("hw.lang") || "zh-CN",
  dict: { "zh-CN": {}, en: {} },
  words(zh, en) { Object.assign(this.dict["zh-CN"], zh); Object.assign(this.dict.en, en); },
  t(key, vars) {
    let text = (this.dict[this.lang] || {})[key] ?? this.dict["zh-CN"][key] ?? key;
    for (const [k, v] of Object.entries(vars || {})) text = text.replaceAll(`{${k}}`, v);
    return text;
  },
  apply(root) {
    document.documentElement.lang = this.lang;
    (root || document).querySelectorAll("[data-i18n]").forEach(el => { el.textContent = this.t(el.dataset.i18n); });
    (root || document).querySelectorAll("[data-i18n-placeholder]").forEach(el => { el.placeholder = this.t(el.dataset.i18nPlaceholder); });
    document.querySelectorAll("[data-lang-switch]").forEach(b => { b.textContent = this.lang === "en" ? "中文" : "English"; });
  },
  toggleLang() { this.lang = this.lang === "en" ? "zh-CN" : "en"; localStorage.setItem("hw.lang", this.lang); this.apply(); document.dispatchEvent(new Event("hw:lang")); },
  get token() { return sessionStorage.getItem("hw.token") || ""; },
  set token(value) { value ? sessionStorage.setItem("hw.token", value) : sessionStorage.removeItem("hw.token"); },
  claims() {
    try { return JSON.parse(atob(this.token.split(".")[1].replace(/-/g, "+").replace(/_/g, "/"))); }
    catch { return null; }
  },
  uuid() {
    if (crypto.randomUUID) return crypto.randomUUID();
    const b = crypto.getRandomValues(new Uint8Array(16));
    return [...b].map(x => x.toString(16).padStart(2, "0")).join("");
  },
  async api(path, { method = "GET", body, headers = {}, raw } = {}) {
    const h = { "Accept-Language": this.lang === "en" ? "en" : "zh-CN", ...headers };
    if (this.token) h.Authorization = `Bearer ${this.token}`;
    if (body !== undefined && !raw) h["Content-Type"] = "application/json";
    const res = await fetch(path, { method, headers: h, body: raw ?? (body === undefined ? undefined : JSON.stringify(body)) });
    let json = null;
    try { json = await res.json(); } catch { /* empty or not JSON */ }
    return { status: res.status, ok: res.ok, json, headers: res.headers };
  },
  sleep(ms) { return new Promise(r => setTimeout(r, ms)); },
};
HW.words(
  { signin: "登录", signout: "退出", token_label: "访问令牌（由管理员签发）", token_bad: "令牌无效或已过期", role: "角色", region: "辖区" },
  { signin: "Sign in", signout: "Sign out", token_label: "Access token (issued by your administrator)", token_bad: "The token is invalid or expired", role: "role", region: "region" },
);
