// The admin REST client. The admin token lives in sessionStorage (this tab only): never in a URL,
// never in a cookie, and it is sent only as a Bearer header to this origin's /admin/ API.

const TOKEN_KEY = "tokenhub.adminToken";

export class AuthError extends Error {}

export class ApiError extends Error {
  constructor(message, status) {
    super(message);
    this.status = status;
  }
}

export function storedToken() {
  return sessionStorage.getItem(TOKEN_KEY);
}

export function forgetToken() {
  sessionStorage.removeItem(TOKEN_KEY);
}

async function errorMessage(response) {
  try {
    const body = await response.json();
    if (body && body.error && typeof body.error.message === "string") return body.error.message;
  } catch {
    // not JSON: fall through to the status line
  }
  return `The admin API answered ${response.status} ${response.statusText}`.trim();
}

export class AdminApi {
  constructor(token) {
    this.token = token;
  }

  async request(method, path, body) {
    const headers = { Accept: "application/json", Authorization: `Bearer ${this.token}` };
    const init = { method, headers, cache: "no-store", credentials: "omit", redirect: "error" };
    if (body !== undefined) {
      headers["Content-Type"] = "application/json";
      init.body = JSON.stringify(body);
    }
    let response;
    try {
      response = await fetch(path, init);
    } catch {
      throw new ApiError("Cannot reach the admin API. Is TokenHub running?", 0);
    }
    if (response.status === 401) throw new AuthError(await errorMessage(response));
    if (!response.ok) throw new ApiError(await errorMessage(response), response.status);
    return response.status === 204 ? null : response.json();
  }

  // Checks the token against the API, then keeps it for this tab.
  async signIn() {
    await this.listKeys({ limit: 1 });
    sessionStorage.setItem(TOKEN_KEY, this.token);
  }

  listKeys({ account, status, cursor, limit = 50 } = {}) {
    const query = new URLSearchParams({ limit: String(limit) });
    if (account) query.set("account", account);
    if (status) query.set("status", status);
    if (cursor) query.set("cursor", cursor);
    return this.request("GET", `/admin/keys?${query}`);
  }

  keyUsage(id, { from, granularity = "day" } = {}) {
    const query = new URLSearchParams({ granularity });
    if (from) query.set("from", from);
    return this.request("GET", `/admin/keys/${encodeURIComponent(id)}/usage?${query}`);
  }

  createKey(fields) {
    return this.request("POST", "/admin/keys", fields);
  }

  revokeKey(id) {
    return this.request("POST", `/admin/keys/${encodeURIComponent(id)}/revoke`, {});
  }

  rotateKey(id, graceSeconds) {
    return this.request("POST", `/admin/keys/${encodeURIComponent(id)}/rotate`, { grace_seconds: graceSeconds });
  }

  async providers() {
    return normalizeProviders(await this.request("GET", "/admin/providers"));
  }
}

// [{name, models: ["provider/model", ...]}], whichever reasonable shape the API uses:
// {"data": [...]} or a bare list; models as bare names, "provider/model" names or {id|name} objects.
export function normalizeProviders(payload) {
  const list = Array.isArray(payload) ? payload : (payload && (payload.data || payload.providers)) || [];
  return list
    .filter((p) => p && typeof p.name === "string")
    .map((p) => ({
      name: p.name,
      models: (p.models || [])
        .map((m) => (typeof m === "string" ? m : m && (m.id || m.name)))
        .filter((m) => typeof m === "string")
        .map((m) => (m.startsWith(`${p.name}/`) ? m : `${p.name}/${m}`)),
    }));
}
