// Homeward consoles: signing a person in through the identity provider (issue 20) with the
// vendored oidc-client-ts (authorization code + PKCE; no protocol code of our own).
//
// window.HW_AUTH comes from /auth/config.js: {issuer, clients: {intake|console|hub: client id}}.
// With an issuer, opening a console without a session sends the person to the provider and back;
// the access token is renewed (refresh token) a minute before it expires; when the session ends
// (sign-out, or the provider refuses a renewal: account disabled, session ended there) every live
// stream is closed and the token forgotten. Without an issuer the console keeps the pasted-token
// form (development without a provider).
//
// Where tokens live: oidc-client-ts keeps the signed-in user (access, refresh and ID token) in
// this tab's sessionStorage, and HW.token mirrors the access token there; nothing is a cookie, so
// no other site can send it. Script runs only from this origin (CSP script-src 'self', no inline
// script, no eval) and pages insert data as text or escaped, so injected text cannot run code to
// read the storage; connect-src names only the services and the provider.
"use strict";
HW.words(
  { signin_provider: "请通过统一身份认证登录", session_ended: "登录已失效，请重新登录", signing_in: "正在登录…",
    role_operator: "接警员", role_commander: "指挥员", role_hub: "枢纽值班员", role_media: "媒体", role_volunteer: "志愿者", role_admin: "管理员", role_mandated_reporter: "强制报告责任人" },
  { signin_provider: "Sign in with the identity provider", session_ended: "Your session has ended; please sign in again", signing_in: "Signing in…",
    role_operator: "operator", role_commander: "commander", role_hub: "hub desk", role_media: "media", role_volunteer: "volunteer", role_admin: "administrator", role_mandated_reporter: "mandated reporter" },
);

HW.session = {
  manager: null,
  get enabled() { return !!(window.HW_AUTH && window.HW_AUTH.issuer); },

  // Resolve the session of this page: true when signed in (HW.token set), false when the page
  // is leaving for the provider's login or shows the sign-in card.
  async begin(consoleName) {
    if (!this.enabled) return true;
    this._pastedFormOff();
    const here = location.origin + location.pathname;
    const store = new oidc.WebStorageStateStore({ store: window.sessionStorage });
    this.manager = new oidc.UserManager({
      authority: HW_AUTH.issuer, client_id: HW_AUTH.clients[consoleName],
      redirect_uri: here, post_logout_redirect_uri: here,
      response_type: "code", scope: "openid profile",
      userStore: store, stateStore: store,
      automaticSilentRenew: true, accessTokenExpiringNotificationTimeInSeconds: 60,
    });
    const events = this.manager.events;
    events.addUserLoaded(user => { HW.token = user.access_token; });
    events.addAccessTokenExpired(() => this.ended());
    events.addSilentRenewError(e => {
      if (!this.manager) return;
      // The provider refused the refresh token (account disabled, session ended there): over now,
      // not when the token runs out. Anything else (network) is retried until the token expires.
      if (e && e.error === "invalid_grant") { this.ended(); return; }
      this.manager.getUser().then(u => { if (!u || u.expired) this.ended(); });
    });
    events.addUserSignedOut(() => this.ended());
    let user = null;
    const params = new URLSearchParams(location.search);
    const returning = params.has("state") && (params.has("code") || params.has("error"));
    try {
      if (returning) {
        history.replaceState(null, "", here);  // the code is single-use: never keep it
        user = await this.manager.signinRedirectCallback(location.origin + location.pathname + "?" + params);
      } else {
        user = await this.manager.getUser();
        if (user && user.expired) user = user.refresh_token ? await this.manager.signinSilent() : null;
      }
    } catch (e) {
      console.warn("sign-in", e);
      user = null;
    }
    if (!user && returning) {  // the provider sent us back without a session: say so, no loop
      HW.token = "";
      document.getElementById("signin")?.classList.remove("hidden");
      const error = document.getElementById("token-error");
      if (error) error.textContent = HW.t("session_ended");
      return false;
    }
    if (!user) { await this.login(); return false; }
    HW.token = user.access_token;
    return true;
  },

  async login() {
    if (!this.manager) return;
    HW.token = "";
    const signin = document.getElementById("signin");
    if (signin) { signin.classList.remove("hidden"); document.getElementById("token-error").textContent = HW.t("signing_in"); }
    await this.manager.signinRedirect();
  },

  // The session is over: nothing may keep acting for this person.
  ended() {
    HW.closeStreams();
    HW.token = "";
    this.manager?.removeUser();
    const signin = document.getElementById("signin");
    if (signin) {
      signin.classList.remove("hidden");
      document.getElementById("token-error").textContent = HW.t("session_ended");
    }
    document.dispatchEvent(new Event("hw:signed-out"));
  },

  async signOut() {
    HW.closeStreams();
    if (!this.manager) { HW.token = ""; location.reload(); return; }
    const user = await this.manager.getUser();
    HW.token = "";
    // Ends the session at the provider too, then comes back here (to its login page).
    await this.manager.signoutRedirect({ id_token_hint: user?.id_token });
  },

  _pastedFormOff() {
    const token = document.getElementById("token");
    token?.closest("label")?.classList.add("hidden");
    const button = document.getElementById("signin-btn");
    if (button) button.dataset.i18n = "signin_provider";
    HW.apply();
  },
};

// What a console shows of who is signed in: name, role, region (and hub).
HW.ROLES = ["operator", "commander", "hub", "media", "volunteer", "admin", "mandated_reporter"];  // shared.auth.Role
HW.who = function (c) {
  const name = c.name || c.preferred_username || c.sub;
  const role = c.role || (c.roles || []).find(r => HW.ROLES.includes(r)) || "";
  const hub = c.hub_id ? ` · ${c.hub_id}` : "";
  return `${name} · ${HW.t("role")} ${HW.t("role_" + role)} (${role}) · ${HW.t("region")} ${c.region}${hub}`;
};

// The sign-in button: the provider when there is one, else the pasted token.
HW.signInClicked = function (after) {
  if (HW.session.enabled) { HW.session.login(); return; }
  HW.token = document.getElementById("token").value.trim();
  after();
};
