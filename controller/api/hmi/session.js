// Who is logged in, and every call to the controller's API in their name: the token rides on each
// request, a 401 ends the session on screen, and a log-in or log-out redraws what the person may do
// (commands, alarm actions, prompts, the run panel) at once instead of at the next poll, and switches the
// page between the live feed (logged in) and reading the line over HTTP (nobody logged in).

import { refreshAlarms } from "./alarms.js";
import { forgetControls } from "./commands.js";
import { follow, hmi } from "./live.js";
import { refreshPrompts } from "./prompts.js";
import { refreshBatch } from "./run.js";
import { renderPicture } from "./picture.js";

export async function api(path, options) {
  const headers = { "Content-Type": "application/json" };
  if (hmi.token) headers.Authorization = `Bearer ${hmi.token}`;
  const response = await fetch(path, { ...options, headers });
  const body = response.status === 204 ? null : await response.json().catch(() => null);
  if (response.status === 401 && hmi.token) setSession(null, null);
  if (!response.ok) {
    const detail = body && body.detail;
    throw new Error(typeof detail === "string" ? detail : `${response.status} ${JSON.stringify(detail)}`);
  }
  return body;
}

export function setSession(token, session) {
  hmi.token = token;
  hmi.session = session;
  if (token) {
    sessionStorage.setItem("depline.token", token);
    sessionStorage.setItem("depline.session", JSON.stringify(session));
  } else {
    sessionStorage.removeItem("depline.token");
    sessionStorage.removeItem("depline.session");
  }
  document.getElementById("login-form").hidden = Boolean(token);
  document.getElementById("logged-in").hidden = !token;
  document.getElementById("who").textContent = session ? `Logged in: ${session.user} (${session.role})` : "";
  forgetControls();
  follow(token, () => setSession(null, null));
  if (hmi.state) renderPicture();
  refreshAlarms();
  refreshPrompts();
  refreshBatch();
}

export async function login(event) {
  event.preventDefault();
  const error = document.getElementById("login-error");
  error.textContent = "";
  const user = document.getElementById("login-user").value;
  const password = document.getElementById("login-password").value;
  try {
    const body = await api("/api/login", { method: "POST", body: JSON.stringify({ user, password }) });
    document.getElementById("login-password").value = "";
    setSession(body.token, { user: body.user, role: body.role, permissions: body.permissions });
  } catch (failure) {
    error.textContent = failure.message;
  }
}

export async function logout() {
  await api("/api/logout", { method: "POST" }).catch(() => null);
  setSession(null, null);
}

export function may(permission) {
  return Boolean(hmi.session && hmi.session.permissions.includes(permission));
}
