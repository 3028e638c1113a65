// Helpers of the alert service's forms (report intake, unidentified children): local times with
// their zone, and photo upload into a field of photo URLs.
"use strict";
HW.pad = (n) => String(n).padStart(2, "0");
HW.localNow = function () {
  const d = new Date(), pad = HW.pad;
  return `${d.getFullYear()}-${pad(d.getMonth() + 1)}-${pad(d.getDate())}T${pad(d.getHours())}:${pad(d.getMinutes())}`;
};
HW.withZone = function (local) {
  const d = new Date(local), off = -d.getTimezoneOffset(), sign = off >= 0 ? "+" : "-", pad = HW.pad;
  return `${local.length === 16 ? local + ":00" : local}${sign}${pad(Math.floor(Math.abs(off) / 60))}:${pad(Math.abs(off) % 60)}`;
};
// Length limits counted as the server counts them (characters after NFC, not the UTF-16 units
// a `maxlength` counts: an emoji or a rare CJK character would count twice, and a paste over
// the limit would be cut without a word): a field over its `data-max` says so at once, with how
// many characters it has; the submit still goes to the server, which answers 422 naming it.
HW.limitLengths = function (form) {
  form.querySelectorAll("[data-max]").forEach(el => {
    const slot = document.createElement("span");
    slot.className = "length-error"; slot.setAttribute("aria-live", "polite");
    el.closest("label").appendChild(slot);
    const check = () => {
      const max = Number(el.dataset.max), n = [...el.value.trim().normalize("NFC")].length;
      slot.textContent = n > max ? HW.t("too_long", { n, max }) : "";
      el.classList.toggle("invalid", n > max);
    };
    el.addEventListener("input", check);
    check();
  });
};
// Clear a form's field errors and its error banner (#form-error) before a new submit.
HW.clearErrors = function (form) {
  form.querySelectorAll(".error").forEach(e => { e.textContent = ""; });
  form.querySelectorAll(".invalid").forEach(e => e.classList.remove("invalid"));
  document.querySelector("#form-error").classList.add("hidden");
};
// Upload the file chosen in `fileInput` (POST /api/v1/photos) and add its URL to `urlsField`;
// progress and failure shown in `banner`.
HW.uploadPhoto = async function (fileInput, urlsField, banner) {
  const file = fileInput.files[0];
  if (!file) return;
  banner.textContent = HW.t("uploading"); banner.classList.remove("hidden");
  try {
    const res = await HW.api("/api/v1/photos", { method: "POST", raw: file, headers: { "Content-Type": file.type } });
    if (!res.ok) throw new Error(res.json?.error?.message || res.status);
    urlsField.value = (urlsField.value.trim() + "\n" + res.json.url).trim();
    banner.classList.add("hidden");
  } catch (e) {
    banner.textContent = HW.t("upload_failed", { msg: e.message });
  }
  fileInput.value = "";
};
