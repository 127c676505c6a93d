// The admin REST API as the console calls it: the session cookie (HttpOnly, sent by the browser)
// authenticates, and every state-changing call carries the session's CSRF token in X-CSRF-Token.

let csrfToken = "";

// root is where the admin API is: the console is its path /console/, wherever a proxy mounts it.
const root = new URL("..", window.location.href).pathname.replace(/\/$/, "");

// ApiError is a refusal of the API: its status and the errors it named ({type, message, field}).
export class ApiError extends Error {
  constructor(status, errors) {
    super(errors.map((e) => e.message).join("\n") || `HTTP ${status}`);
    this.status = status;
    this.errors = errors;
  }
}

// request calls the API and returns its "data"; a 401 sends the page back to sign-in.
async function request(method, path, body) {
  const headers = { Accept: "application/json" };
  if (body !== undefined) headers["Content-Type"] = "application/json";
  if (method !== "GET") headers["X-CSRF-Token"] = csrfToken;
  const resp = await fetch(root + path, {
    method, headers, credentials: "same-origin",
    body: body === undefined ? undefined : JSON.stringify(body),
  });
  let payload = {};
  try {
    payload = await resp.json();
  } catch {
    payload = {};
  }
  if (!resp.ok) {
    const err = new ApiError(resp.status, payload.errors || []);
    if (resp.status === 401) window.dispatchEvent(new CustomEvent("s3dest:signed-out"));
    throw err;
  }
  return payload.data || {};
}

export const api = {
  get: (path) => request("GET", path),
  post: (path, body) => request("POST", path, body),
  patch: (path, body) => request("PATCH", path, body),
  del: (path) => request("DELETE", path),
};

// session returns whether the browser has a live session, and keeps its CSRF token.
export async function resumeSession() {
  const resp = await fetch("session", { credentials: "same-origin" });
  const data = resp.ok ? (await resp.json()).data : {};
  csrfToken = data.signedIn ? data.csrfToken : "";
  return Boolean(data.signedIn);
}

// signIn trades the admin token for a session cookie; the token itself is not kept.
export async function signIn(token) {
  const resp = await fetch("session", {
    method: "POST", credentials: "same-origin",
    headers: { "Content-Type": "application/json" },
    body: JSON.stringify({ token }),
  });
  const payload = await resp.json().catch(() => ({}));
  if (!resp.ok) throw new ApiError(resp.status, payload.errors || []);
  csrfToken = payload.data.csrfToken;
}

export async function signOut() {
  await fetch("session", { method: "DELETE", credentials: "same-origin", headers: { "X-CSRF-Token": csrfToken } });
  csrfToken = "";
}

