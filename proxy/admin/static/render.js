// Building the keys table. Everything from the API goes in through textContent, never innerHTML.

import { withLimits } from "./limits.js";

import { usageCell } from "./usage.js";

const dateFormat = new Intl.DateTimeFormat(undefined, { year: "numeric", month: "short", day: "numeric" });
const fullFormat = new Intl.DateTimeFormat(undefined, { dateStyle: "medium", timeStyle: "long" });
const relative = new Intl.RelativeTimeFormat(undefined, { numeric: "auto" });
const STEPS = [["year", 31536000], ["month", 2592000], ["week", 604800], ["day", 86400],
  ["hour", 3600], ["minute", 60]];

export function el(tag, props = {}, ...children) {
  const node = document.createElement(tag);
  for (const [name, value] of Object.entries(props)) {
    if (name === "class") node.className = value;
    else if (name === "text") node.textContent = value;
    else if (name.startsWith("data-") || name.startsWith("aria-")) node.setAttribute(name, value);
    else node[name] = value;
  }
  node.append(...children.filter((c) => c !== null && c !== undefined));
  return node;
}

export function ago(date, now = Date.now()) {
  const seconds = (date.getTime() - now) / 1000;
  for (const [unit, size] of STEPS) {
    if (Math.abs(seconds) >= size) return relative.format(Math.round(seconds / size), unit);
  }
  return "just now";
}

function timeCell(iso, { emptyText, relativeTime = false }) {
  if (!iso) return el("td", { class: "muted" }, el("span", { text: emptyText }));
  const date = new Date(iso);
  const label = relativeTime ? ago(date) : dateFormat.format(date);
  return el("td", {}, el("time", { dateTime: iso, title: fullFormat.format(date), text: label }));
}

function statusCell(key) {
  const status = key.status || "active";
  const text = status.charAt(0).toUpperCase() + status.slice(1);
  const cell = el("td", {}, el("span", { class: `badge badge-${status}`, text }));
  // A rotated key in its grace period: active, with a revocation already scheduled.
  if (status === "active" && key.revoked_at) {
    const end = new Date(key.revoked_at);
    cell.append(el("span", { class: "sub" }, "Rotated out, ends ",
      el("time", { dateTime: key.revoked_at, title: fullFormat.format(end), text: ago(end) })));
  }
  return cell;
}

function restrictionsCell(key) {
  const providers = key.allowed_providers || [];
  const models = key.allowed_models || [];
  if (!providers.length && !models.length) return el("td", { class: "muted" }, el("span", { text: "All models" }));
  const list = el("ul", { class: "chips", "aria-label": "Restrictions" });
  for (const p of providers) list.append(el("li", { class: "chip chip-provider", title: "Provider", text: p }));
  for (const m of models) list.append(el("li", { class: "chip", title: "Model", text: m }));
  return el("td", {}, list);
}

function nameCell(key, lookup) {
  const cell = el("td", { class: "name" }, el("span", { class: "key-name", text: key.name }));
  if (key.rotated_from) {
    const old = lookup(key.rotated_from);
    cell.append(el("span", { class: "sub", text: old ? `Replaces ${old.hint}` : "Rotated key" }));
  }
  return cell;
}

const DAY_MS = 86400000;

// Created, with the key's age under it; a key still in use past the rotation reminder
// ([keystore] rotation_reminder_days, sent with the list) is flagged.
function createdCell(key, reminderDays) {
  const cell = timeCell(key.created_at, { emptyText: "—" });
  if (!key.created_at) return cell;
  const days = Math.max(0, Math.floor((Date.now() - new Date(key.created_at).getTime()) / DAY_MS));
  const inUse = (key.status || "active") === "active" && !key.revoked_at;
  const due = inUse && reminderDays !== null && reminderDays !== undefined && days > reminderDays;
  cell.append(el("span", { class: due ? "sub age-due" : "sub", text: `${days} ${days === 1 ? "day" : "days"} old` }));
  if (due) {
    cell.append(el("span", { class: "badge badge-due", title: `Older than ${reminderDays} days: rotate it`,
      text: "Rotation due" }));
  }
  return cell;
}

function actionButton(label, key, kind) {
  return el("button", { type: "button", class: `button small ${kind}`, "data-action": kind.split(" ")[0],
    "data-id": key.id }, label, el("span", { class: "sr-only", text: ` ${key.name} (${key.hint})` }));
}

function actionsCell(key) {
  const cell = el("td", { class: "actions-cell" });
  if ((key.status || "active") !== "revoked") {
    cell.append(actionButton("Rotate", key, "rotate"), actionButton("Revoke", key, "revoke danger-ghost"));
  }
  return cell;
}

// `lookup(id)` finds another listed key (the one a rotated key replaced), or undefined.
export function keyRow(key, lookup = () => undefined, { reminderDays = null } = {}) {
  const row = el("tr", { "data-id": key.id, "data-status": key.status || "active" },
    nameCell(key, lookup),
    el("td", {}, el("code", { class: "hint", text: key.hint })),
    el("td", { text: key.account }),
    createdCell(key, reminderDays),
    timeCell(key.expires_at, { emptyText: "Never" }),
    timeCell(key.last_used_at, { emptyText: "Never", relativeTime: true }),
    usageCell(key, el),
    statusCell(key),
    withLimits(restrictionsCell(key), key),
    actionsCell(key));
  return row;
}

export function checkbox(name, value, labelText) {
  return el("label", { class: "check" }, el("input", { type: "checkbox", name, value }), el("span", { text: labelText }));
}

// Local date input (yyyy-mm-dd) -> the end of that day in UTC, RFC 3339.
export function endOfDayUtc(dateValue) {
  return dateValue ? `${dateValue}T23:59:59Z` : null;
}

export function todayUtc() {
  return new Date().toISOString().slice(0, 10);
}
