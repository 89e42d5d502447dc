// The API Keys page: sign-in, the keys list with filters, New API Key, Revoke and Rotate.

import { AdminApi, AuthError, forgetToken, storedToken } from "./api.js";
import { closeDialog, openDialog, resetForm, SecretDialog, Toast, wireDialogs } from "./dialogs.js";
import { limitsFromForm } from "./limits.js";
import { checkbox, el, endOfDayUtc, keyRow, todayUtc } from "./render.js";
import { chartStart, dailyTokens, usageChart } from "./usage.js";

const $ = (selector) => document.querySelector(selector);
const GRACE_TEXT = { 0: "stopped working now", 300: "keeps working for 5 minutes", 3600: "keeps working for 1 hour",
  86400: "keeps working for 24 hours", 604800: "keeps working for 7 days" };

class KeysPage {
  constructor() {
    this.api = null;
    this.keys = new Map();
    this.accounts = new Set();
    this.cursor = null;
    this.providers = null;
    this.pending = null;  // the key a revoke/rotate dialog is about
    this.secret = new SecretDialog($("#secret-dialog"));
    this.toast = new Toast($("#toast"));
    this.filterTimer = null;
  }

  start() {
    wireDialogs(() => $("#keys-title"));
    $("#signin-form").addEventListener("submit", (e) => this.signIn(e));
    $("#sign-out").addEventListener("click", () => this.signOut());
    $("#new-key").addEventListener("click", () => this.openCreate());
    $("#create-form").addEventListener("submit", (e) => this.create(e));
    $("#provider-picker").addEventListener("change", () => this.narrowModels());
    $("#revoke-form").addEventListener("submit", (e) => this.revoke(e));
    $("#rotate-form").addEventListener("submit", (e) => this.rotate(e));
    $("#keys-body").addEventListener("click", (e) => this.rowAction(e));
    $("#load-more").addEventListener("click", () => this.load({ append: true }));
    $("#filter-status").addEventListener("change", () => this.load());
    $("#filter-account").addEventListener("input", () => this.filterSoon());
    $("#filters").addEventListener("submit", (e) => { e.preventDefault(); this.load(); });
    const token = storedToken();
    if (token) this.showKeys(new AdminApi(token), false);
    else this.showSignIn("");
  }

  // --- signing in and out ---

  showSignIn(message) {
    $("#keys-view").hidden = true;
    $("#sign-out").hidden = true;
    $("#signin-view").hidden = false;
    $("#signin-error").textContent = message;
    $("#admin-token").value = "";
    $("#admin-token").focus();
  }

  async signIn(event) {
    event.preventDefault();
    const token = $("#admin-token").value.trim();
    if (!token) return this.signInFailed("Enter the admin token.");
    const api = new AdminApi(token);
    try {
      await api.signIn();
    } catch (error) {
      return this.signInFailed(error instanceof AuthError ? "That admin token was not accepted." : error.message);
    }
    this.showKeys(api, true);
  }

  signInFailed(message) {
    $("#signin-error").textContent = message;
    $("#admin-token").setAttribute("aria-invalid", "true");
    $("#admin-token").focus();
  }

  signOut(message = "") {
    forgetToken();
    this.api = null;
    this.providers = null;
    this.keys.clear();
    this.accounts.clear();
    $("#keys-body").replaceChildren();
    for (const dialog of document.querySelectorAll("dialog")) closeDialog(dialog);
    this.showSignIn(message);
  }

  showKeys(api, focusHeading) {
    this.api = api;
    $("#admin-token").removeAttribute("aria-invalid");
    $("#signin-view").hidden = true;
    $("#keys-view").hidden = false;
    $("#sign-out").hidden = false;
    if (focusHeading) $("#keys-title").focus();
    this.load();
  }

  // Every API failure: a rejected token ends the session, anything else is shown where it happened.
  failed(error, where) {
    if (error instanceof AuthError) this.signOut("Your admin token was not accepted. Sign in again.");
    else where.textContent = error.message;
  }

  // --- the list ---

  filterSoon() {
    clearTimeout(this.filterTimer);
    this.filterTimer = setTimeout(() => this.load(), 250);
  }

  async load({ append = false } = {}) {
    const account = $("#filter-account").value.trim();
    const status = $("#filter-status").value;
    $("#list-error").textContent = "";
    let page;
    try {
      page = await this.api.listKeys({ account, status, cursor: append ? this.cursor : null });
    } catch (error) {
      return this.failed(error, $("#list-error"));
    }
    if (!append) this.keys.clear();
    for (const key of page.data) this.keys.set(key.id, key);
    this.cursor = page.next_cursor || null;
    this.reminderDays = page.rotation_reminder_days ?? null;
    this.render();
  }

  render() {
    const options = { reminderDays: this.reminderDays };
    const rows = [...this.keys.values()].map((key) => keyRow(key, (id) => this.keys.get(id), options));
    $("#keys-body").replaceChildren(...rows);
    $("#empty-state").hidden = rows.length > 0;
    $("#keys-table").classList.toggle("is-empty", rows.length === 0);
    $("#load-more").hidden = !this.cursor;
    const n = rows.length;
    $("#key-count").textContent = `${n} ${n === 1 ? "key" : "keys"}${this.cursor ? " shown" : ""}`;
    for (const key of this.keys.values()) this.accounts.add(key.account);
    $("#known-accounts").replaceChildren(...[...this.accounts].sort().map((a) => el("option", { value: a })));
    this.drawUsage();
  }

  // One usage call per listed key, drawn into its row when it answers; a chart that cannot be loaded
  // is simply left out (the month's totals are already in the row).
  drawUsage() {
    const start = chartStart();
    for (const slot of document.querySelectorAll("[data-usage-chart]")) {
      this.api.keyUsage(slot.dataset.usageChart, { from: start.toISOString(), granularity: "day" })
        .then((report) => slot.replaceChildren(usageChart(dailyTokens(report, start))))
        .catch(() => slot.replaceChildren());
    }
  }

  rowAction(event) {
    const button = event.target.closest("button[data-action]");
    const key = button && this.keys.get(button.dataset.id);
    if (!key) return;
    this.pending = key;
    const kind = button.dataset.action;
    resetForm($(`#${kind}-form`));
    $(`#${kind}-name`).textContent = key.name;
    $(`#${kind}-hint`).textContent = key.hint;
    openDialog($(`#${kind}-dialog`), button);
  }

  // --- New API Key ---

  async openCreate() {
    const form = $("#create-form");
    resetForm(form);
    $("#key-expires").min = todayUtc();
    openDialog($("#create-dialog"), $("#new-key"));
    await this.fillPickers();
  }

  async fillPickers() {
    const status = $("#picker-status");
    if (!this.providers) {
      status.textContent = "Loading the configured providers…";
      try {
        this.providers = await this.api.providers();
      } catch (error) {
        return this.failed(error, status);
      }
    }
    status.textContent = this.providers.length ? "" : "No providers are configured.";
    const providers = $("#provider-picker");
    const models = $("#model-picker");
    providers.replaceChildren(providers.firstElementChild,
      el("div", { class: "checks" }, ...this.providers.map((p) => checkbox("provider", p.name, p.name))));
    models.replaceChildren(models.firstElementChild, ...this.providers.map((p) => el("div", { class: "model-group" },
      el("p", { class: "group-title", text: p.name }),
      el("div", { class: "checks" }, ...p.models.map((m) => checkbox("model", m, m))))));
  }

  // With providers picked, only their models can ever be used: the others are disabled.
  narrowModels() {
    const picked = new Set(this.checked("provider"));
    for (const box of document.querySelectorAll("#model-picker input[name=model]")) {
      const provider = box.value.split("/")[0];
      box.disabled = picked.size > 0 && !picked.has(provider);
      if (box.disabled) box.checked = false;
    }
  }

  checked(name) {
    return [...document.querySelectorAll(`#create-form input[name=${name}]:checked`)].map((b) => b.value);
  }

  createBody() {
    const body = { name: $("#key-name").value.trim() };
    const account = $("#key-account").value.trim();
    const expires = endOfDayUtc($("#key-expires").value);
    if (account) body.account = account;
    if (expires) body.expires_at = expires;
    const models = this.checked("model");
    const providers = this.checked("provider");
    if (models.length) body.allowed_models = models;
    if (providers.length) body.allowed_providers = providers;
    const limits = limitsFromForm($("#create-form"));
    if (limits) body.limits = limits;
    return body;
  }

  async create(event) {
    event.preventDefault();
    const body = this.createBody();
    const error = $("#create-error");
    if (!body.name) {
      $("#key-name").setAttribute("aria-invalid", "true");
      $("#key-name").focus();
      error.textContent = "Give the key a name, such as production or dev.";
      return;
    }
    const result = await this.busy(event.submitter, () => this.api.createKey(body), error);
    if (!result) return;
    closeDialog($("#create-dialog"));
    this.secret.show(result.key, `Key “${result.name}” for account “${result.account}”.`, $("#new-key"));
    this.load();
  }

  // Runs an API call with the submit button disabled; errors are shown in `where`.
  async busy(button, call, where) {
    if (button) button.disabled = true;
    try {
      return await call();
    } catch (error) {
      this.failed(error, where);
      return null;
    } finally {
      if (button) button.disabled = false;
    }
  }

  // --- Revoke and Rotate ---

  async revoke(event) {
    event.preventDefault();
    const key = this.pending;
    const result = await this.busy(event.submitter, () => this.api.revokeKey(key.id), $("#revoke-error"));
    if (!result) return;
    closeDialog($("#revoke-dialog"));
    this.toast.show(`Key “${key.name}” revoked.${propagationText(result.propagation)}`, "success");
    this.load();
  }

  async rotate(event) {
    event.preventDefault();
    const key = this.pending;
    const grace = Number($("#grace").value);
    const result = await this.busy(event.submitter, () => this.api.rotateKey(key.id, grace), $("#rotate-error"));
    if (!result) return;
    closeDialog($("#rotate-dialog"));
    const old = GRACE_TEXT[grace] || `keeps working for ${grace} seconds`;
    this.secret.show(result.key, `New key for “${key.name}”. The old key (${key.hint}) ${old}.`, $("#keys-title"));
    this.load();
  }
}

function propagationText(p) {
  if (!p || typeof p.instances !== "number") return "";
  if (p.published === false) return " Redis was unreachable: instances pick it up from Postgres within seconds.";
  return ` ${p.confirmed} of ${p.instances} proxy ${p.instances === 1 ? "instance" : "instances"} confirmed.`;
}

new KeysPage().start();
