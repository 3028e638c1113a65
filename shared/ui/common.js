// Homeward consoles: language, sign-in with a bearer token (kept for this browser session
// only), and a fetch wrapper that reports network failures separately from answers.
"use strict";
const HW = {
  lang: localStorage.getItem("hw.lang") || "zh-CN",
  dict: { "zh-CN": {}, en: {} },
  words(zh, en) { Object.assign(this.dict["zh-CN"], zh); Object.assign(this.dict.en, en); },
  t(key, vars) {
    let text = (this.dict[this.lang] || {})[key] ?? this.dict["zh-CN"][key] ?? key;
    // One pass, each value as it is: "$'" or "{when}" inside a value is text, not a pattern.
    const given = vars || {};
    return text.replace(/\{(\w+)\}/g, (whole, k) => (Object.hasOwn(given, k) ? String(given[k]) : whole));
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
    try {  // base64url JSON in UTF-8 (names are Chinese)
      const bytes = Uint8Array.from(atob(this.token.split(".")[1].replace(/-/g, "+").replace(/_/g, "/")), ch => ch.charCodeAt(0));
      return JSON.parse(new TextDecoder().decode(bytes));
    }
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

// Server-Sent Events over fetch, so the bearer token can be sent (EventSource cannot send
// headers). Reconnects with Last-Event-ID after a drop, so nothing is missed.
HW.stream = function (path, onEvent, onState) {
  let lastId = null, stopped = false, controller = null;
  async function run() {
    let backoff = 500;
    while (!stopped) {
      controller = new AbortController();
      try {
        const headers = { Accept: "text/event-stream", Authorization: `Bearer ${HW.token}` };
        if (lastId) headers["Last-Event-ID"] = lastId;
        const res = await fetch(path, { headers, signal: controller.signal });
        if (!res.ok || !res.body) throw new Error(`HTTP ${res.status}`);
        onState?.("live"); backoff = 500;
        const reader = res.body.getReader(), decoder = new TextDecoder();
        let buffer = "";
        for (;;) {
          const { value, done } = await reader.read();
          if (done) break;
          buffer += decoder.decode(value, { stream: true }).replace(/\r\n/g, "\n");
          let cut;
          while ((cut = buffer.indexOf("\n\n")) >= 0) {
            const block = buffer.slice(0, cut); buffer = buffer.slice(cut + 2);
            const ev = { event: "message", data: "", id: null };
            for (const line of block.split("\n")) {
              if (line.startsWith(":")) continue;
              const i = line.indexOf(":"), key = i < 0 ? line : line.slice(0, i);
              const val = i < 0 ? "" : line.slice(i + 1).replace(/^ /, "");
              if (key === "data") ev.data += (ev.data ? "\n" : "") + val;
              else if (key === "event") ev.event = val;
              else if (key === "id") ev.id = val;
            }
            if (ev.id) lastId = ev.id;
            if (ev.data) { try { onEvent(ev.event, JSON.parse(ev.data), ev.id); } catch (e) { console.error(e); } }
          }
        }
      } catch (e) {
        if (stopped) return;
      }
      onState?.("reconnecting");
      await HW.sleep(backoff); backoff = Math.min(backoff * 2, 10000);
    }
  }
  run();
  const handle = { stop() { stopped = true; controller?.abort(); HW.streams.delete(handle); } };
  HW.streams.add(handle);
  return handle;
};
HW.streams = new Set();
// When a session ends every live stream closes (issue 20): none goes on with a dead token.
HW.closeStreams = function () { for (const s of [...HW.streams]) s.stop(); };

HW.since = function (iso) {
  const s = Math.max(0, (Date.now() - new Date(iso).getTime()) / 1000);
  const h = Math.floor(s / 3600), m = Math.floor((s % 3600) / 60);
  return HW.lang === "en" ? `${h}h ${m}m` : `${h}小时${m}分`;
};

// A moment as people read it: in the deployment's zone (HW_CONFIG.display_timezone, served by
// each console's config.js; Asia/Shanghai by default), "2026-11-30 20:00（北京时间）", whatever
// offset it was sent with — the same form as shared/display.py gives the push texts.
HW.zoneNames = { "Asia/Shanghai": ["北京时间", "Beijing time"], "Asia/Urumqi": ["新疆时间", "Xinjiang time"],
  "Asia/Hong_Kong": ["香港时间", "Hong Kong time"], "Asia/Macau": ["澳门时间", "Macau time"], "Asia/Taipei": ["台北时间", "Taipei time"] };
HW.when = function (iso, zone) {
  const d = new Date(iso);
  if (!iso || isNaN(d.getTime())) return String(iso ?? "");
  zone = zone || (window.HW_CONFIG && window.HW_CONFIG.display_timezone) || "Asia/Shanghai";
  const p = Object.fromEntries(new Intl.DateTimeFormat("en-CA", { timeZone: zone, year: "numeric", month: "2-digit",
    day: "2-digit", hour: "2-digit", minute: "2-digit", hourCycle: "h23" }).formatToParts(d).map(x => [x.type, x.value]));
  const [zh, en] = HW.zoneNames[zone] || [zone, zone];
  return `${p.year}-${p.month}-${p.day} ${p.hour}:${p.minute}${HW.lang === "en" ? ` (${en})` : `（${zh}）`}`;
};

// A stored phone (E.164, shared/phones.py) as a mainland desk dials it: mobiles grouped 3-4-4,
// other mainland numbers with their trunk 0, numbers elsewhere in international form.
HW.phone = function (value) {
  const v = String(value ?? "");
  const mobile = /^\+861(\d{2})(\d{4})(\d{4})$/.exec(v);
  if (mobile) return `1${mobile[1]} ${mobile[2]} ${mobile[3]}`;
  if (/^\+86\d{7,11}$/.test(v)) return `0${v.slice(3)}`;
  return v;
};

HW.escape = function (text) {
  return String(text ?? "").replace(/[&<>"']/g, c => ({ "&": "&amp;", "<": "&lt;", ">": "&gt;", '"': "&quot;", "'": "&#39;" }[c]));
};
