// The operator HMI: plain JavaScript, no build step, nothing fetched from outside the controller.
// Live state arrives over the WebSocket /ws ("state" messages at the service's bounded rate); alarms
// are re-read on every "alarm" message and every 2 s, prompts and the batch every 2 s (they have no
// feed message).
// Every value on screen says when it cannot be trusted: unknown, a sensor's quality word, or STALE when
// the last state is older than STALE_AFTER_S. Colour always repeats a word, never replaces it.
"use strict";

const STALE_AFTER_S = 3;
const POLL_MS = 2000;
const RECONNECT_MS = 2000;
const ATMOSPHERE_WORDS = {
  air: "AIR",
  evacuating: "EVACUATING",
  vacuum: "VACUUM",
  back_filling: "BACK-FILLING",
  inert_in_spec: "INERT (in spec)",
  inert_out_of_spec: "INERT OUT OF SPEC",
  process: "PROCESS GAS",
  unknown: "UNKNOWN",
};
const SVG_NS = "http://www.w3.org/2000/svg";

const hmi = {
  token: sessionStorage.getItem("depline.token"),
  session: JSON.parse(sessionStorage.getItem("depline.session") || "null"),
  state: null,
  stateReceivedMs: 0,
  socket: null,
};

// ---------------------------------------------------------------------------------------------------
// formatting

function engineering(value, unit) {
  if (value === null || value === undefined) return "unknown";
  if (value === 0) return `0 ${unit}`;
  const exponent = Math.floor(Math.log10(Math.abs(value)) / 3) * 3;
  const prefixes = { "-12": "p", "-9": "n", "-6": "µ", "-3": "m", 0: "", 3: "k", 6: "M" };
  const prefix = prefixes[exponent];
  if (prefix === undefined) return `${value.toExponential(2)} ${unit}`;
  const scaled = value / 10 ** exponent;
  return `${scaled.toPrecision(3)} ${prefix}${unit}`;
}

function readingText(label, reading, unit, digits) {
  if (!reading) return null;
  if (reading.value === null || reading.quality !== "ok") {
    const value = reading.value === null ? "no value" : `${reading.value.toFixed(digits)} ${unit}`;
    return { text: `${label}: ${value} (${reading.quality.replace("_", " ")})`, stale: true };
  }
  return { text: `${label}: ${reading.value.toFixed(digits)} ${unit}`, stale: false };
}

function timeOfDay(epochS) {
  return epochS ? new Date(epochS * 1000).toLocaleTimeString() : "—";
}

function measuredPosition(valve) {
  if (valve.open_ls === null && valve.closed_ls === null) return "unknown";
  if (valve.confirmed_open) return "open";
  if (valve.confirmed_closed) return "closed";
  if (valve.open_ls && valve.closed_ls) return "fault (both limit switches)";
  return "between";
}

function commandedPosition(valve) {
  if (valve.commanded_open === null) return "not commanded";
  return valve.commanded_open ? "open" : "closed";
}

function disagrees(valve) {
  // without limit switches there is no measurement to disagree with; "unknown" already says so
  if (valve.commanded_open === null || (valve.open_ls === null && valve.closed_ls === null)) return false;
  return valve.commanded_open ? !valve.confirmed_open : !valve.confirmed_closed;
}

// ---------------------------------------------------------------------------------------------------
// the synoptic

function svg(tag, attrs, text) {
  const node = document.createElementNS(SVG_NS, tag);
  for (const [key, value] of Object.entries(attrs || {})) node.setAttribute(key, value);
  if (text !== undefined) node.textContent = text;
  return node;
}

// Spaces left to right along the chain of ports from the room, then any the chain did not reach.
function orderedSpaces(state) {
  const names = state.spaces.map((s) => s.name);
  const order = [];
  let current = "room";
  for (let guard = 0; guard < state.ports.length; guard += 1) {
    const port = state.ports.find((p) => p.between.includes(current) &&
      p.between.some((b) => b !== current && b !== "room" && !order.includes(b)));
    if (!port) break;
    current = port.between.find((b) => b !== current);
    order.push(current);
  }
  for (const name of names) if (!order.includes(name)) order.push(name);
  return order.map((name) => state.spaces.find((s) => s.name === name)).filter(Boolean);
}

function spaceLines(space, items, stale) {
  const lines = [];
  const add = (text, cls, item) => lines.push({ text, cls: stale ? "stale-value" : cls, item });
  add(`pressure: ${engineering(space.pressure_pa, "Pa")}`, space.pressure_pa === null ? "stale-value" : "");
  for (const reading of [readingText("frost point", space.frost_point, "°C", 1),
    readingText("O2", space.o2, "ppm", 1)]) {
    if (reading) add(reading.text, reading.stale ? "stale-value" : "");
  }
  if (space.substrate_temp_c !== null) add(`substrate: ${space.substrate_temp_c.toFixed(1)} °C`, "");
  if (space.pump_running !== null) add(`rough pump: ${space.pump_running ? "running" : "off"}`, "");
  if (space.turbo_speed_hz !== null) add(`turbo: ${space.turbo_speed_hz.toFixed(0)} Hz`, "");
  if (space.gas_flow_sccm !== null) add(`gas flow: ${space.gas_flow_sccm.toFixed(1)} sccm`, "");
  if (space.sources_on.length) add(`sources ON: ${space.sources_on.join(", ")}`, "warn");
  add(`base pressure reached: ${space.base_pressure_reached ? "yes" : "no"}`, "");
  for (const [name, valve] of Object.entries(space.valves)) {
    const mismatch = disagrees(valve);
    const measured = measuredPosition(valve);
    const shown = measured === "unknown" ? "no limit switch" : `meas ${measured}`;
    add(`${name.replace("_", " ")} valve: cmd ${commandedPosition(valve)}, ${shown}` +
      (mismatch ? " — MISMATCH" : ""), mismatch ? "warn" : "");
  }
  for (const item of items) {
    const seal = item.sealed ? "sealed" : "open";
    const where = item.location === space.name ? "" : ` in ${item.location}`;
    const kind = item.kind === "container" ? `container ${seal}` : `${item.kind}${where}`;
    const danger = item.exposed && !space.safe_for_exposed;
    add(`▣ ${item.id}: ${kind}${item.exposed ? " (exposed)" : ""}` + (danger ? " — EXPOSED TO NON-INERT" : ""),
      danger ? "warn" : "", item.id);
  }
  return lines;
}

function drawSpace(group, space, items, x, width, height, stale) {
  const box = svg("g", { "data-space": space.name, "aria-label": `space ${space.name}` });
  box.appendChild(svg("rect", { x, y: 40, width, height, rx: 6, class: "space-box" }));
  box.appendChild(svg("text", { x: x + 10, y: 62, class: "title" }, `${space.name} (${space.kind.replace("_", " ")})`));
  const atmosphere = stale ? "unknown" : space.atmosphere;
  box.appendChild(svg("rect", { x: x + 8, y: 72, width: width - 16, height: 26, rx: 4, class: `atm-${atmosphere}` }));
  const word = ATMOSPHERE_WORDS[space.atmosphere] || space.atmosphere.toUpperCase();
  box.appendChild(svg("text", { x: x + 16, y: 90, class: "atm-word", "data-atmosphere": space.name },
    stale ? `${word} (STALE)` : word));
  let y = 118;
  for (const line of spaceLines(space, items, stale)) {
    const text = svg("text", { x: x + 12, y, class: line.cls }, line.text);
    if (line.item) {
      // a real link (focusable, Enter opens it); the click is handled on the holder so a redraw loses nothing
      const link = svg("a", { href: `#item-${line.item}`, class: "item-link", "data-item": line.item,
        role: "button", "aria-label": `Exposure record of ${line.item}` });
      link.appendChild(text);
      box.appendChild(link);
    } else {
      box.appendChild(text);
    }
    y += 18;
  }
  const title = svg("title", {}, `${space.name}: ${space.reason}`);
  box.appendChild(title);
  group.appendChild(box);
}

function drawPort(group, port, x, height, stale) {
  const valve = port.valve;
  const mismatch = disagrees(valve);
  const measured = measuredPosition(valve);
  const node = svg("g", { "data-port": port.name, "aria-label": `port ${port.name}` });
  const lineClass = mismatch ? "port-mismatch" : "port-ok";
  const midY = 40 + height / 2;
  if (measured === "open") {
    node.appendChild(svg("line", { x1: x - 30, y1: midY, x2: x + 30, y2: midY, class: lineClass }));
  } else {
    node.appendChild(svg("line", { x1: x, y1: midY - 60, x2: x, y2: midY + 60, class: lineClass }));
  }
  const texts = [port.name, port.kind.replace("_", " "), `cmd: ${commandedPosition(valve)}`, `meas: ${measured}`];
  if (mismatch) texts.push("MISMATCH");
  if (stale) texts.push("(STALE)");
  texts.forEach((text, i) => {
    const cls = i === 0 ? "title" : text === "MISMATCH" ? "warn" : stale ? "stale-value" : "";
    node.appendChild(svg("text", { x, y: 60 + i * 16, "text-anchor": "middle", class: cls }, text));
  });
  group.appendChild(node);
}

function renderSynoptic() {
  const state = hmi.state;
  const holder = document.getElementById("synoptic");
  if (!state) return;
  const stale = (Date.now() - hmi.stateReceivedMs) / 1000 > STALE_AFTER_S;
  holder.classList.toggle("stale", stale);
  const spaces = orderedSpaces(state);
  const portWidth = 100;
  const width = 1240;
  const spaceWidth = (width - portWidth * (spaces.length + 1)) / Math.max(spaces.length, 1);
  const itemsBySpace = (name) => state.items.filter((i) => i.space === name);
  const rows = Math.max(...spaces.map((s) => spaceLines(s, itemsBySpace(s.name), false).length), 6);
  const height = 80 + rows * 18;
  const root = svg("svg", {
    viewBox: `0 0 ${width} ${height + 50}`, role: "img",
    "aria-label": `Synoptic of line ${state.line}: ` +
      spaces.map((s) => `${s.name} ${ATMOSPHERE_WORDS[s.atmosphere] || s.atmosphere}`).join(", "),
  });
  root.appendChild(svg("text", { x: 8, y: 24, class: "title" }, `line ${state.line}`));
  const portAt = (a, b) => state.ports.find((p) => p.between.includes(a) && p.between.includes(b));
  let x = portWidth;
  let previous = "room";
  const drawn = new Set();
  spaces.forEach((space) => {
    const port = portAt(previous, space.name);
    if (port) { drawPort(root, port, x - portWidth / 2, height, stale); drawn.add(port.name); }
    drawSpace(root, space, itemsBySpace(space.name), x, spaceWidth, height, stale);
    previous = space.name;
    x += spaceWidth + portWidth;
  });
  const last = portAt(previous, "room");
  if (last) { drawPort(root, last, x - portWidth / 2, height, stale); drawn.add(last.name); }
  // the drawing is rebuilt on every state message: an item link with the keyboard focus gets it back
  const focused = holder.contains(document.activeElement) ? document.activeElement.getAttribute("data-item") : null;
  holder.replaceChildren(root);
  if (focused) {
    const again = [...root.querySelectorAll("[data-item]")].find((node) => node.getAttribute("data-item") === focused);
    if (again) again.focus();
  }
  document.getElementById("line-name").textContent = state.line;
  renderControls(spaces, state.ports);
}

function renderAge() {
  const label = document.getElementById("state-age");
  if (!hmi.state) { label.textContent = "(no data yet)"; return; }
  const age = (Date.now() - hmi.stateReceivedMs) / 1000;
  const stale = age > STALE_AFTER_S;
  label.textContent = stale ? `STALE: last update ${age.toFixed(0)} s ago` : `updated ${timeOfDay(hmi.state.ts)}`;
  label.classList.toggle("stale", stale);
  if (stale !== document.getElementById("synoptic").classList.contains("stale")) renderSynoptic();
}

// ---------------------------------------------------------------------------------------------------
// commands

function button(text, onClick, attrs) {
  const node = document.createElement("button");
  node.type = "button";
  node.textContent = text;
  for (const [key, value] of Object.entries(attrs || {})) node.setAttribute(key, value);
  node.addEventListener("click", onClick);
  return node;
}

let controlsKey = "";

function renderControls(spaces, ports) {
  const may = Boolean(hmi.session && hmi.session.permissions.includes("command"));
  const key = JSON.stringify([may, spaces.map((s) => [s.name, Object.keys(s.valves), s.pump_running !== null]),
    ports.map((p) => p.name)]);
  if (key === controlsKey) return; // rebuilding would steal keyboard focus twice a second
  controlsKey = key;
  document.getElementById("controls-hint").hidden = may;
  const holder = document.getElementById("controls");
  const groups = [];
  for (const port of ports) {
    const set = document.createElement("fieldset");
    set.appendChild(Object.assign(document.createElement("legend"), { textContent: `Port ${port.name}` }));
    for (const open of [true, false]) {
      const verb = open ? "Open" : "Close";
      set.appendChild(button(`${verb} ${port.name}`, () => sendCommand({ type: "SetPort", port: port.name, open }),
        { "data-command": `port:${port.name}:${open ? "open" : "close"}` }));
    }
    groups.push(set);
  }
  for (const space of spaces) {
    const set = document.createElement("fieldset");
    set.appendChild(Object.assign(document.createElement("legend"), { textContent: `Space ${space.name}` }));
    if (space.pump_running !== null) {
      for (const running of [true, false]) {
        set.appendChild(button(`Pump ${running ? "on" : "off"}`,
          () => sendCommand({ type: "SetPump", space: space.name, running }),
          { "data-command": `pump:${space.name}:${running ? "on" : "off"}` }));
      }
    }
    for (const valve of Object.keys(space.valves)) {
      for (const open of [true, false]) {
        set.appendChild(button(`${open ? "Open" : "Close"} ${valve.replace("_", " ")}`,
          () => sendCommand({ type: "SetValve", space: space.name, valve, open }),
          { "data-command": `valve:${space.name}:${valve}:${open ? "open" : "close"}` }));
      }
    }
    groups.push(set);
  }
  for (const node of groups) for (const b of node.querySelectorAll("button")) b.disabled = !may;
  holder.replaceChildren(...groups);
}

// A command and the readings behind a refusal, in the operator's words: "open inlet_gate", "pressure:
// 101 kPa", never "type=SetPort" or "pressure_pa = 101325". An action this table does not know is still
// shown, field by field.
const ACTION_WORDS = {
  SetPort: (a) => `${a.open ? "open" : "close"} ${a.port}`,
  SetValve: (a) => `${a.open ? "open" : "close"} the ${a.valve.replaceAll("_", " ")} valve of ${a.space}`,
  SetPump: (a) => `${a.running ? "start" : "stop"} the ${a.space} pump`,
  SetTurbo: (a) => `${a.running ? "start" : "stop"} the ${a.space} turbo`,
};
const EVIDENCE_UNITS = [["_ppmv", "ppm"], ["_pa", "Pa"], ["_c", "°C"], ["_hz", "Hz"], ["_sccm", "sccm"],
  ["_s", "s"], ["_v", "V"], ["_w", "W"]];
const EVIDENCE_LABELS = { dp: "pressure difference", o2: "O2", "predicted o2": "predicted O2" };

function describeAction(action) {
  const words = ACTION_WORDS[action.type];
  if (words) return words(action);
  return Object.entries(action).map(([k, v]) => `${k}=${v}`).join(" ");
}

function evidenceText(key, value) {
  const unit = EVIDENCE_UNITS.find(([suffix]) => key.endsWith(suffix) && typeof value === "number");
  const bare = unit ? key.slice(0, -unit[0].length) : key;
  const label = EVIDENCE_LABELS[bare.replaceAll("_", " ")] || bare.replaceAll("_", " ");
  let shown;
  if (unit) shown = unit[1] === "Pa" ? engineering(value, "Pa") : `${Number(value.toPrecision(4))} ${unit[1]}`;
  else if (Array.isArray(value)) shown = value.join(", ");
  else if (value !== null && typeof value === "object") shown = JSON.stringify(value);
  else shown = String(value).replaceAll("_", " ");
  return `${label}: ${shown}`;
}

function showResult(record) {
  const box = document.getElementById("command-result");
  box.className = `result ${record.outcome}`;
  const what = describeAction(record.action);
  const head = document.createElement("p");
  const words = { done: "Done", refused: "REFUSED", failed: "FAILED" };
  head.textContent = `${words[record.outcome]}: ${what} (by ${record.user})`;
  const parts = [head];
  if (record.outcome === "refused") {
    const list = document.createElement("ul");
    for (const refusal of record.refusals) {
      const li = document.createElement("li");
      li.className = "refusal";
      const evidence = Object.entries(refusal.evidence).map(([k, v]) => evidenceText(k, v)).join("; ");
      li.textContent = evidence ? `${refusal.reason} (${evidence})` : refusal.reason;
      list.appendChild(li);
    }
    if (!record.refusals.length) list.appendChild(Object.assign(document.createElement("li"), { textContent: record.reason }));
    parts.push(list);
  }
  if (record.outcome === "failed") parts.push(Object.assign(document.createElement("p"), { textContent: record.error }));
  box.replaceChildren(...parts);
}

function showError(text) {
  const box = document.getElementById("command-result");
  box.className = "result failed";
  box.textContent = text;
}

async function api(path, options) {
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

async function sendCommand(action) {
  try {
    const record = await api("/api/commands", { method: "POST", body: JSON.stringify(action) });
    showResult(record);
  } catch (error) {
    showError(`Not sent: ${error.message}`);
  }
}

// ---------------------------------------------------------------------------------------------------
// session

function setSession(token, session) {
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
  controlsKey = "";
  if (hmi.state) renderSynoptic();
  refreshAlarms();
  refreshPrompts();
  refreshBatch();
}

async function login(event) {
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

async function logout() {
  await api("/api/logout", { method: "POST" }).catch(() => null);
  setSession(null, null);
}

// ---------------------------------------------------------------------------------------------------
// alarms and prompts

function may(permission) {
  return Boolean(hmi.session && hmi.session.permissions.includes(permission));
}

function renderAlarms(alarms) {
  const banner = document.getElementById("alarm-banner");
  const active = alarms.active;
  const unacked = active.filter((a) => a.unacknowledged).length;
  if (!active.length) {
    banner.className = "banner banner-none";
    banner.textContent = alarms.shelved.length ? `No active alarms (${alarms.shelved.length} shelved)` : "No active alarms";
  } else {
    banner.className = `banner ${unacked ? "banner-unacked" : "banner-alarm"}`;
    const top = active[0];
    banner.textContent = `ALARM: ${active.length} active, ${unacked} unacknowledged — ` +
      `${top.severity.toUpperCase()}: ${top.text}`;
  }
  const body = document.querySelector("#alarms tbody");
  if (!active.length) {
    const row = document.createElement("tr");
    row.appendChild(Object.assign(document.createElement("td"), { colSpan: 5, textContent: "No active alarms." }));
    body.replaceChildren(row);
    return;
  }
  body.replaceChildren(...active.map((alarm) => {
    const row = document.createElement("tr");
    row.dataset.alarm = alarm.id;
    const cell = (text, cls) => Object.assign(document.createElement("td"), { textContent: text, className: cls || "" });
    row.appendChild(cell(alarm.severity.toUpperCase(), `sev-${alarm.severity}`));
    const gone = alarm.condition_active || alarm.state.startsWith("cleared") ? "" : " (condition gone)";
    row.appendChild(cell(alarm.state.replaceAll("_", " ") + gone));
    row.appendChild(cell(timeOfDay(alarm.raised_at_s)));
    const text = cell("");
    text.appendChild(Object.assign(document.createElement("div"), { textContent: alarm.text }));
    if (alarm.detail) text.appendChild(Object.assign(document.createElement("div"), { textContent: alarm.detail }));
    text.appendChild(Object.assign(document.createElement("div"), { textContent: alarm.guidance, className: "guidance" }));
    row.appendChild(text);
    const action = cell(alarm.acked_by ? `acknowledged by ${alarm.acked_by}` : "");
    if (alarm.unacknowledged && may("alarm.acknowledge")) {
      action.appendChild(button(`Acknowledge ${alarm.id}`, () => acknowledge(alarm.id), { "data-ack": alarm.id }));
    }
    if (may("alarm.shelve")) {
      action.appendChild(button(`Shelve ${alarm.id}`, () => askShelve(alarm.id), { "data-shelve": alarm.id }));
    }
    row.appendChild(action);
    return row;
  }));
}

// ---------------------------------------------------------------------------------------------------
// shelving: an in-page form (reason and an expiry the board accepts); the server's refusal is shown
// in its own words (a trip alarm, an expiry out of bounds). The shelved list says who, why, until when.

let shelvingAlarm = null;

function askShelve(alarmId) {
  shelvingAlarm = alarmId;
  const form = document.getElementById("shelve-form");
  document.getElementById("shelve-alarm").textContent = alarmId;
  document.getElementById("shelve-error").textContent = "";
  document.getElementById("shelve-reason").value = "";
  form.hidden = false;
  document.getElementById("shelve-reason").focus();
}

function closeShelve() {
  shelvingAlarm = null;
  document.getElementById("shelve-form").hidden = true;
}

async function submitShelve(event) {
  event.preventDefault();
  if (!shelvingAlarm) return;
  const reason = document.getElementById("shelve-reason").value.trim();
  const error = document.getElementById("shelve-error");
  if (!reason) { error.textContent = "A reason is required to shelve an alarm."; return; }
  const untilS = Date.now() / 1000 + Number(document.getElementById("shelve-expiry").value);
  try {
    await api(`/api/alarms/${encodeURIComponent(shelvingAlarm)}/shelve`,
      { method: "POST", body: JSON.stringify({ reason, until_s: untilS }) });
    closeShelve();
  } catch (failure) {
    error.textContent = `Not shelved: ${failure.message}`;
  }
  await refreshAlarms();
}

async function unshelve(alarmId) {
  try {
    await api(`/api/alarms/${encodeURIComponent(alarmId)}/unshelve`, { method: "POST" });
  } catch (error) {
    showError(`Unshelve ${alarmId}: ${error.message}`);
  }
  await refreshAlarms();
}

function renderShelved(shelved) {
  const body = document.querySelector("#shelved tbody");
  const cell = (text) => Object.assign(document.createElement("td"), { textContent: text });
  if (!shelved.length) {
    const row = document.createElement("tr");
    row.appendChild(Object.assign(cell("No shelved alarms."), { colSpan: 5 }));
    body.replaceChildren(row);
    return;
  }
  body.replaceChildren(...shelved.map((alarm) => {
    const row = document.createElement("tr");
    row.dataset.shelved = alarm.id;
    const shelf = alarm.shelf || { user: "?", reason: "", until_s: null };
    row.appendChild(cell(`${alarm.severity.toUpperCase()}: ${alarm.id} — ${alarm.text}`));
    row.appendChild(cell(shelf.user));
    row.appendChild(cell(shelf.reason));
    row.appendChild(cell(timeOfDay(shelf.until_s)));
    const action = cell("");
    if (may("alarm.unshelve")) {
      action.appendChild(button(`Unshelve ${alarm.id}`, () => unshelve(alarm.id), { "data-unshelve": alarm.id }));
    }
    row.appendChild(action);
    return row;
  }));
}

function setUpShelve() {
  document.getElementById("shelve-form").addEventListener("submit", submitShelve);
  document.getElementById("shelve-cancel").addEventListener("click", closeShelve);
  document.getElementById("shelve-form").addEventListener("keydown", (event) => {
    if (event.key === "Escape") closeShelve();
  });
}

// ---------------------------------------------------------------------------------------------------
// an item's exposure record, opened from its label in the synoptic

let shownItem = null;
const LEDGER_EVENT_WORDS = {
  registered: "registered",
  moved: "moved",
  opened: "container opened",
  sealed: "container sealed",
  atmosphere: "atmosphere changed",
  non_inert: "exposed in a non-inert atmosphere",
};

async function openItem(itemId) {
  shownItem = itemId;
  const panel = document.getElementById("item-panel");
  panel.hidden = false;
  document.getElementById("item-title").textContent = `Exposure record of ${itemId}`;
  const verdict = document.getElementById("item-verdict");
  verdict.className = "verdict";
  verdict.textContent = "Loading…";
  let ledger;
  try {
    ledger = await api(`/api/items/${encodeURIComponent(itemId)}/ledger`);
  } catch (error) {
    verdict.textContent = `No exposure record: ${error.message}`;
    renderItemTables([], []);
    return;
  }
  if (shownItem !== itemId) return; // another item was chosen meanwhile
  if (ledger.ever_exposed_to_non_inert) {
    verdict.className = "verdict exposed";
    verdict.textContent = `${itemId}: EXPOSED to a non-inert atmosphere — ${ledger.non_inert.length} ledger ` +
      `entr${ledger.non_inert.length === 1 ? "y" : "ies"}, ${ledger.exposed_s.toFixed(0)} s exposed in total`;
  } else {
    verdict.textContent = `${itemId}: never exposed to a non-inert atmosphere`;
  }
  renderItemTables(ledger.path, ledger.non_inert);
  document.getElementById("item-close").focus();
}

function renderItemTables(path, entries) {
  const cell = (text) => Object.assign(document.createElement("td"), { textContent: text });
  const rowOf = (texts) => {
    const row = document.createElement("tr");
    for (const text of texts) row.appendChild(cell(text));
    return row;
  };
  const stays = path.map((stay) => rowOf([stay.space, timeOfDay(stay.since_ts),
    stay.until_ts === null ? "now" : timeOfDay(stay.until_ts)]));
  document.querySelector("#item-path tbody").replaceChildren(...stays);
  const rows = entries.map((entry) => {
    const row = rowOf([timeOfDay(entry.ts), LEDGER_EVENT_WORDS[entry.event] || entry.event, entry.space,
      ATMOSPHERE_WORDS[entry.atmosphere] || entry.atmosphere, entry.exposed ? "yes" : "no"]);
    row.dataset.entry = entry.event;
    return row;
  });
  if (!rows.length) {
    const none = rowOf(["none"]);
    none.firstChild.colSpan = 5;
    rows.push(none);
  }
  document.querySelector("#item-entries tbody").replaceChildren(...rows);
}

function setUpItems() {
  document.getElementById("synoptic").addEventListener("click", (event) => {
    const link = event.target.closest("[data-item]");
    if (!link) return;
    event.preventDefault();
    openItem(link.dataset.item);
  });
  document.getElementById("item-close").addEventListener("click", () => {
    shownItem = null;
    document.getElementById("item-panel").hidden = true;
  });
}

async function refreshAlarms() {
  try {
    const alarms = await api("/api/alarms");
    renderAlarms(alarms);
    renderShelved(alarms.shelved);
  } catch (error) {
    document.getElementById("alarm-banner").textContent = `Alarms unavailable: ${error.message}`;
  }
}

async function acknowledge(alarmId) {
  try {
    await api(`/api/alarms/${encodeURIComponent(alarmId)}/acknowledge`, { method: "POST" });
  } catch (error) {
    showError(`Acknowledge ${alarmId}: ${error.message}`);
  }
  await refreshAlarms();
}

async function refreshPrompts() {
  const list = document.getElementById("prompts");
  let prompts;
  try {
    prompts = await api("/api/prompts");
  } catch (error) {
    list.replaceChildren(Object.assign(document.createElement("li"), { textContent: `Prompts unavailable: ${error.message}` }));
    return;
  }
  if (!prompts.length) {
    list.replaceChildren(Object.assign(document.createElement("li"), { textContent: "No glove work asked for." }));
    return;
  }
  const shown = [...list.querySelectorAll("li[data-prompt]")].map((li) => li.dataset.prompt).join("|");
  if (shown === prompts.map((p) => p.key).join("|") && list.dataset.may === String(may("command"))) return;
  list.dataset.may = String(may("command"));
  list.replaceChildren(...prompts.map((prompt) => {
    const li = document.createElement("li");
    li.dataset.prompt = prompt.key;
    li.appendChild(document.createTextNode(`${prompt.prompt} (asked ${timeOfDay(prompt.asked_at)}) `));
    const confirm = button("Confirm done", () => confirmPrompt(prompt.key), { "aria-label": `Confirm: ${prompt.prompt}` });
    confirm.disabled = !may("command");
    li.appendChild(confirm);
    return li;
  }));
}

async function confirmPrompt(key) {
  try {
    await api(`/api/prompts/${encodeURIComponent(key)}/confirm`, { method: "POST" });
  } catch (error) {
    showError(`Confirm: ${error.message}`);
  }
  await Promise.all([refreshPrompts(), refreshBatch()]);
}

// ---------------------------------------------------------------------------------------------------
// the run panel: start a queue, the batch's current job and phase, hold / resume / stop / abort, the
// queue, and once the batch has ended its end-of-run record (outcome, plant hours, the electrode's
// exposure verdict and certificate per job). Polled with the prompts (the feed carries no batch
// messages). Every irreversible request asks in the page itself (a confirmation group whose safe answer
// has the focus), not with window.confirm: a touch screen shows it inline and a browser test can answer
// it like any other button. Nodes are only rebuilt when what they show changes, so keyboard focus on a
// button or a certificate link survives the 2 s poll.

const RUN_STATE_WORDS = {
  idle: "WAITING TO START",
  starting: "STARTING",
  execute: "RUNNING",
  completing: "FINISHING",
  complete: "COMPLETE",
  holding: "HOLDING",
  held: "HELD — waiting for a person to resume, stop or abort",
  unholding: "RESUMING after a hold",
  suspending: "SUSPENDING",
  suspended: "SUSPENDED — waiting for an outside condition to clear",
  unsuspending: "RESUMING after a suspension",
  stopping: "STOPPING — making the line safe",
  stopped: "STOPPED — the batch can be resumed",
  aborting: "ABORTING — making the line safe",
  aborted: "ABORTED",
  clearing: "CLEARING",
  resetting: "RESETTING",
};
const OUTCOME_WORDS = { done: "done", failed: "FAILED", aborted: "ABORTED" };
const BATCH_STATUS_WORDS = {
  running: "running",
  complete: "COMPLETE — every job done",
  failed: "ended with failures",
  stopped: "STOPPED — start the same queue to resume it",
};
const run = { view: null, queuesKey: "", jobsKey: "", queues: [] };

function runStateWords(state) {
  return RUN_STATE_WORDS[state] || state.toUpperCase();
}

function cell(text, cls) {
  return Object.assign(document.createElement("td"), { textContent: text, className: cls || "" });
}

function queueRow(job, currentId) {
  const row = document.createElement("tr");
  row.dataset.job = job.id;
  row.classList.toggle("current", job.id === currentId);
  row.appendChild(cell(String(job.position)));
  row.appendChild(cell(job.recipe));
  row.appendChild(cell(runStateWords(job.state)));
  const outcome = job.outcome ? OUTCOME_WORDS[job.outcome] || job.outcome : job.id === currentId ? "running" : "not finished";
  const last = cell(job.message && job.outcome !== "done" ? `${outcome}: ${job.message}` : outcome,
    job.outcome ? `outcome-${job.outcome}` : "");
  last.dataset.outcome = job.outcome || "";
  row.appendChild(last);
  row.appendChild(cell(job.plant_hours === null ? "" : job.plant_hours.toFixed(2)));
  const exposure = cell(job.exposed === null ? "not loaded yet" : job.exposure, job.exposed ? "exposed" : "");
  exposure.dataset.exposed = job.exposed === null ? "" : String(job.exposed);
  row.appendChild(exposure);
  const report = document.createElement("td");
  if (job.report) {
    report.appendChild(Object.assign(document.createElement("a"), {
      href: job.report, target: "_blank", rel: "noopener", textContent: `Certificate ${job.position}`,
    }));
  }
  row.appendChild(report);
  return row;
}

function renderQueue(view) {
  const table = document.getElementById("run-queue");
  table.hidden = !view.jobs.length;
  const ended = Boolean(view.batch) && !view.running;
  document.getElementById("run-queue-title").textContent = ended ? "End-of-run record" : "Queue";
  const currentId = view.current ? view.current.job_id : null;
  const key = JSON.stringify([view.jobs, currentId]);
  if (key === run.jobsKey) return;
  run.jobsKey = key;
  table.tBodies[0].replaceChildren(...view.jobs.map((job) => queueRow(job, currentId)));
}

function renderCurrent(current) {
  document.getElementById("run-current").hidden = !current;
  if (!current) return;
  document.getElementById("run-job").textContent =
    `${current.position} of ${current.jobs}: ${current.job_id}`;
  const phase = document.getElementById("run-phase");
  const shown = Math.min(current.phase_index + 1, current.phases);
  phase.textContent = `${shown} of ${current.phases}: ${current.phase_title}`;
  phase.dataset.phaseIndex = String(current.phase_index);
  const percent = Math.round(current.fraction * 100);
  const bar = document.getElementById("run-progress");
  bar.value = percent;
  bar.setAttribute("aria-valuetext", `${percent} % of the job`);
  document.getElementById("run-percent").textContent = `${percent} % of the job`;
  const state = document.getElementById("run-state");
  state.textContent = runStateWords(current.state);
  state.className = `run-state-${current.state}`;
  const note = document.getElementById("run-hold-note");
  const waiting = current.hold_requested_by && current.state !== "held";
  note.hidden = !waiting;
  if (waiting) {
    note.textContent = `Hold asked by ${current.hold_requested_by}: the run holds when "${current.phase_title}" ends ` +
      "(a step in progress is never paused halfway).";
  }
}

function renderRunActions(view) {
  const current = view.current;
  const command = may("command");
  document.getElementById("run-actions").hidden = !view.running;
  const held = Boolean(current) && current.state === "held";
  const holdAsked = Boolean(current) && Boolean(current.hold_requested_by);
  const hold = document.getElementById("hold-batch");
  const resume = document.getElementById("resume-batch");
  hold.hidden = held || holdAsked;
  resume.hidden = !(held || holdAsked);
  resume.textContent = held ? "Resume" : "Withdraw the hold";
  for (const id of ["hold-batch", "resume-batch", "abort-batch"]) {
    document.getElementById(id).disabled = !command || !current;
  }
  document.getElementById("stop-batch").disabled = !command;
}

function batchSummary(view) {
  if (!view.runs_here) return "No batch runs in this controller.";
  if (!view.batch) {
    if (view.running) return "A batch is starting…";
    return view.failure ? `The last batch failed to start: ${view.failure}` : "No batch has run yet: start one below.";
  }
  const finished = view.jobs.filter((j) => j.outcome).length;
  const status = view.running ? "running" : BATCH_STATUS_WORDS[view.batch.status] || view.batch.status;
  let text = `Batch ${view.batch.id} (${view.batch.name}), started by ${view.batch.user}: ${status}; ` +
    `${finished} of ${view.jobs.length} jobs finished`;
  if (view.running && !view.current) text += " — no job running now";
  if (!view.running && view.batch.ended_at) text += `; ended ${timeOfDay(view.batch.ended_at)}`;
  if (view.failure) text += `. ${view.failure}`;
  return text;
}

function renderBatch(view) {
  run.view = view;
  document.getElementById("run-batch").textContent = batchSummary(view);
  document.getElementById("run-start").hidden = !view.runs_here || view.running;
  document.getElementById("start-batch").disabled = !may("command") || !run.queues.length;
  renderRunActions(view);
  renderCurrent(view.current);
  renderQueue(view);
  const report = document.getElementById("run-report");
  report.hidden = !view.batch || view.running;
  if (view.batch) document.getElementById("run-report-link").href = `/api/reports/${view.batch.id}.html`;
  if (view.runs_here && !view.running) refreshQueues();
}

async function refreshBatch() {
  try {
    renderBatch(await api("/api/batch"));
  } catch (error) {
    document.getElementById("run-batch").textContent = `Batch status unavailable: ${error.message}`;
  }
}

async function refreshQueues() {
  let queues;
  try {
    queues = await api("/api/batch/queues");
  } catch (error) {
    document.getElementById("start-error").textContent = `Queues unavailable: ${error.message}`;
    return;
  }
  const key = JSON.stringify(queues);
  if (key === run.queuesKey) return;
  run.queuesKey = key;
  run.queues = queues;
  const select = document.getElementById("queue-select");
  const chosen = select.value;
  select.replaceChildren(...queues.map((q) => Object.assign(document.createElement("option"), {
    value: q.name, textContent: `${q.name} — ${q.jobs} job${q.jobs === 1 ? "" : "s"}: ${q.recipes.join(", ")}`,
  })));
  if (queues.some((q) => q.name === chosen)) select.value = chosen;
  document.getElementById("start-batch").disabled = !may("command") || !queues.length;
}

function confirmGroup(name, show, focusId) {
  document.getElementById(`${name}-confirm`).hidden = !show;
  document.getElementById(focusId).focus(); // the safe answer has the focus
}

function askStart(event) {
  event.preventDefault();
  const queue = run.queues.find((q) => q.name === document.getElementById("queue-select").value);
  if (!queue) return;
  document.getElementById("start-error").textContent = "";
  document.getElementById("start-question").textContent = `Start queue ${queue.name} (${queue.jobs} ` +
    `job${queue.jobs === 1 ? "" : "s"}: ${queue.recipes.join(", ")})? If it was stopped before, it resumes ` +
    "where it stopped.";
  confirmGroup("start", true, "start-no");
}

async function startBatch() {
  const queue = document.getElementById("queue-select").value;
  confirmGroup("start", false, "start-batch");
  try {
    const batch = await api("/api/batch/start", { method: "POST", body: JSON.stringify({ queue }) });
    const box = document.getElementById("command-result");
    box.className = "result done";
    box.textContent = `Batch ${batch.id} (${batch.name}) started by ${batch.user}.`;
  } catch (error) {
    document.getElementById("start-error").textContent = `Start refused: ${error.message}`;
  }
  await refreshBatch();
}

async function steerBatch(request, words) {
  try {
    const answer = await api(`/api/batch/${request}`, { method: "POST" });
    const box = document.getElementById("command-result");
    box.className = "result done";
    box.textContent = `${words} (asked by ${answer.user}${answer.job ? `, job ${answer.job}` : ""}).`;
  } catch (error) {
    showError(`${request}: ${error.message}`);
  }
  await refreshBatch();
}

function setUpRunPanel() {
  document.getElementById("run-start").addEventListener("submit", askStart);
  document.getElementById("start-no").addEventListener("click", () => confirmGroup("start", false, "start-batch"));
  document.getElementById("start-yes").addEventListener("click", startBatch);
  document.getElementById("hold-batch").addEventListener("click",
    () => steerBatch("hold", "Hold requested: the run holds at the end of the current phase"));
  document.getElementById("resume-batch").addEventListener("click",
    () => steerBatch("resume", "Resume requested"));
  for (const [name, request, words] of [
    ["stop", "stop", "Stop requested: the running job goes to its safe state; the batch can be resumed"],
    ["abort", "abort", "Abort requested: the running step is cut short and the line made safe"],
  ]) {
    document.getElementById(`${name}-batch`).addEventListener("click", () => confirmGroup(name, true, `${name}-no`));
    document.getElementById(`${name}-no`).addEventListener("click", () => confirmGroup(name, false, `${name}-batch`));
    document.getElementById(`${name}-yes`).addEventListener("click", () => {
      confirmGroup(name, false, `${name}-batch`);
      steerBatch(request, words);
    });
    document.getElementById(`${name}-confirm`).addEventListener("keydown", (event) => {
      if (event.key === "Escape") confirmGroup(name, false, `${name}-batch`);
    });
  }
  document.getElementById("start-confirm").addEventListener("keydown", (event) => {
    if (event.key === "Escape") confirmGroup("start", false, "start-batch");
  });
}

// ---------------------------------------------------------------------------------------------------
// trends: per space, pressure (log scale), frost point and substrate temperature (linear), kept in the
// page from the "state" messages it already receives. Bounded three ways: at most one sample per
// TREND_SAMPLE_MS per series, at most TREND_MAX_POINTS kept (older half thinned when full, so recent
// minutes stay fine and hours stay coarse), at most TREND_MAX_DRAWN drawn, and a redraw at most every
// TREND_REDRAW_MS. A value that cannot be trusted (no value, sensor quality not ok, feed silent for more
// than STALE_AFTER_S) is a gap in the line, never a line drawn through it.
// On load and after every reconnect the page seeds its series with the controller's history
// (GET /api/trends, sampled whether or not a page was open): one answer per window, coarse to fine, so the
// last minutes come at the controller's full rate and the hours coarser. History only fills time before
// the first live sample since the (re)connect, and a seam wider than the feed's staleness is a gap.

const TREND_WINDOWS_S = { 300: "5 min", 1800: "30 min", 7200: "2 h" };
const TREND_SAMPLE_MS = 1000;
const TREND_KEEP_S = Math.max(...Object.keys(TREND_WINDOWS_S).map(Number));
const TREND_MAX_POINTS = 2400;
const TREND_MAX_DRAWN = 300;
const TREND_REDRAW_MS = 500;
const TREND_HISTORY_WINDOWS_S = [7200, 1800, 300]; // coarse to fine; each finer answer wins where both cover
const TREND_W = 380;
const TREND_H = 120;
const TREND_PAD = { left: 58, right: 8, top: 8, bottom: 22 };
const TREND_KINDS = [
  { key: "pressure", title: "pressure", unit: "Pa", log: true, value: (s) => s.pressure_pa },
  { key: "frost", title: "frost point", unit: "°C", log: false, has: (s) => s.frost_point !== null,
    value: (s) => (s.frost_point.quality === "ok" ? s.frost_point.value : null) },
  { key: "substrate", title: "substrate temperature", unit: "°C", log: false,
    has: (s) => s.substrate_temp_c !== null, value: (s) => s.substrate_temp_c },
];

const trends = { series: new Map(), windowS: 300, dirty: false, layoutKey: "", connectedMs: 0, historySampleMs: 0 };

function trendValue(kind, space) {
  const value = kind.value(space);
  if (value === null || value === undefined || !Number.isFinite(value)) return null;
  return kind.log && value <= 0 ? null : value;
}

function thinOlderHalf(points) {
  const half = Math.floor(points.length / 2);
  const kept = [];
  for (let i = 0; i + 1 < half; i += 2) {
    // keep a gap a gap: a pair with an untrusted value stays untrusted
    const [a, b] = [points[i], points[i + 1]];
    kept.push(a.v === null || b.v === null ? { t: a.t, v: null } : a);
  }
  return kept.concat(points.slice(half - (half % 2)));
}

function recordTrends(state, nowMs) {
  for (const space of state.spaces) {
    for (const kind of TREND_KINDS) {
      if (kind.has && !kind.has(space)) continue;
      const id = `${space.name}:${kind.key}`;
      let series = trends.series.get(id);
      if (!series) {
        series = { id, space: space.name, kind, points: [] };
        trends.series.set(id, series);
      }
      const last = series.points[series.points.length - 1];
      const value = trendValue(kind, space);
      if (last && nowMs - last.t < TREND_SAMPLE_MS) {
        if (value === null) last.v = null; // an untrusted moment inside the sample stays visible
        continue;
      }
      // a silent feed is a gap, recorded as such so thinning and downsampling keep it (history points
      // come at the controller's sampling interval, so the seam after them allows that much more)
      const quietMs = STALE_AFTER_S * 1000 + (last && last.h ? trends.historySampleMs : 0);
      if (last && nowMs - last.t > quietMs) series.points.push({ t: nowMs - 1, v: null, quiet: true });
      series.points.push({ t: nowMs, v: value });
      const horizonMs = nowMs - TREND_KEEP_S * 1000;
      while (series.points.length && series.points[0].t < horizonMs) series.points.shift();
      if (series.points.length > TREND_MAX_POINTS) series.points = thinOlderHalf(series.points);
    }
  }
  trends.dirty = true;
}

// One answer of GET /api/trends as page points, on this page's clock: the answer's "now" is the
// controller's clock when this page received it (a browser with a wrong clock still joins in order).
function historySeries(answer, receivedMs) {
  const offsetMs = receivedMs - answer.now * 1000;
  const found = new Map();
  for (const s of answer.series) {
    const points = s.points.map(([t, v]) => ({ t: t * 1000 + offsetMs, v: Number.isFinite(v) ? v : null, h: true }));
    found.set(`${s.space}:${s.kind}`, { space: s.space, kind: s.kind, points: points.filter((p) => p.t <= receivedMs) });
  }
  return found;
}

// Coarse to fine: a coarser answer's points only before the finer one's first point.
function joinHistory(answers) {
  const joined = new Map();
  for (const answer of answers) {
    for (const [id, s] of answer) {
      const coarse = joined.get(id);
      const firstMs = s.points.length ? s.points[0].t : Infinity;
      const older = coarse ? coarse.points.filter((p) => p.t < firstMs) : [];
      joined.set(id, { ...s, points: older.concat(s.points) });
    }
  }
  return joined;
}

function joinAtSeam(before, after, quietMs) {
  if (!before.length || !after.length) return before.concat(after);
  const gap = after[0].t - before[before.length - 1].t > quietMs && before[before.length - 1].v !== null;
  return before.concat(gap ? [{ t: after[0].t - 1, v: null }] : [], after);
}

// The page's points from before the history starts (a controller restarted since), the history up to the
// first live sample since the (re)connect, then those live samples: in order, never twice.
function seedTrends(history) {
  const seamMs = STALE_AFTER_S * 1000 + trends.historySampleMs;
  for (const [id, h] of history) {
    const kind = TREND_KINDS.find((k) => k.key === h.kind);
    if (!kind || !h.points.length) continue;
    let series = trends.series.get(id);
    if (!series) {
      series = { id, space: h.space, kind, points: [] };
      trends.series.set(id, series);
    }
    const live = series.points.filter((p) => p.t >= trends.connectedMs);
    // the feed's silence before the reconnect is the history's to fill: the seam decides on a gap afresh
    if (live.length && live[0].quiet && h.points.some((p) => p.t < live[0].t)) live.shift();
    const cutMs = live.length ? live[0].t : Infinity;
    const past = h.points.filter((p) => p.t < cutMs);
    const firstMs = past.length ? past[0].t : cutMs;
    const older = series.points.filter((p) => p.t < firstMs && p.t < trends.connectedMs);
    let points = joinAtSeam(joinAtSeam(older, past, STALE_AFTER_S * 1000), live, seamMs);
    const horizonMs = Date.now() - TREND_KEEP_S * 1000;
    points = points.filter((p) => p.t >= horizonMs);
    while (points.length > TREND_MAX_POINTS) points = thinOlderHalf(points);
    series.points = points;
  }
  trends.dirty = true;
}

async function loadTrendHistory() {
  try {
    const answers = await Promise.all(TREND_HISTORY_WINDOWS_S.map(async (windowS) => {
      const response = await fetch(`/api/trends?window_s=${windowS}`, { cache: "no-store" });
      if (!response.ok) throw new Error(`GET /api/trends: ${response.status}`);
      const answer = await response.json();
      trends.historySampleMs = answer.sample_s * 1000;
      return historySeries(answer, Date.now());
    }));
    seedTrends(joinHistory(answers));
  } catch (error) {
    // the live samples still draw; only the time before this page opened stays empty
    console.warn("trend history unavailable", error);
  }
}

// Buckets of equal time; a bucket with any untrusted value is a gap, an empty one is nothing.
function downsample(points, fromMs, toMs) {
  const inside = points.filter((p) => p.t >= fromMs && p.t <= toMs);
  if (inside.length <= TREND_MAX_DRAWN) return inside;
  const width = (toMs - fromMs) / TREND_MAX_DRAWN;
  const buckets = new Map();
  for (const p of inside) {
    const index = Math.min(Math.floor((p.t - fromMs) / width), TREND_MAX_DRAWN - 1);
    const bucket = buckets.get(index) || { t: 0, sum: 0, n: 0, gap: false };
    bucket.t = p.t;
    if (p.v === null) bucket.gap = true; else { bucket.sum += p.v; bucket.n += 1; }
    buckets.set(index, bucket);
  }
  return [...buckets.values()].map((b) => ({ t: b.t, v: b.gap || !b.n ? null : b.sum / b.n }));
}

function trendScale(kind, values) {
  if (kind.log) {
    const logs = values.map(Math.log10);
    let low = Math.floor(Math.min(...logs));
    let high = Math.ceil(Math.max(...logs));
    if (high - low < 1) { low -= 1; high += 1; }
    const ticks = [];
    const step = Math.max(1, Math.ceil((high - low) / 5));
    for (let e = low; e <= high; e += step) ticks.push({ at: e, label: `1e${e}` });
    return { low, high, map: Math.log10, ticks };
  }
  let low = Math.min(...values);
  let high = Math.max(...values);
  const pad = Math.max((high - low) * 0.1, 0.5);
  low -= pad; high += pad;
  const ticks = [low, (low + high) / 2, high].map((v) => ({ at: v, label: v.toFixed(1) }));
  return { low, high, map: (v) => v, ticks };
}

function latestText(series, nowMs, feedStale) {
  const last = series.points[series.points.length - 1];
  const kind = series.kind;
  if (!last || last.v === null) return { text: `latest: unknown (${feedStale ? "STALE" : "no trusted value"})`, stale: true };
  const shown = kind.log ? `${last.v.toExponential(2)} ${kind.unit}` : `${last.v.toFixed(1)} ${kind.unit}`;
  const ageS = (nowMs - last.t) / 1000;
  if (feedStale || ageS > STALE_AFTER_S) return { text: `latest: ${shown} — STALE (${ageS.toFixed(0)} s old)`, stale: true };
  return { text: `latest: ${shown}`, stale: false };
}

function drawTrend(series, nowMs, feedStale) {
  const kind = series.kind;
  const fromMs = nowMs - trends.windowS * 1000;
  const points = downsample(series.points, fromMs, nowMs);
  const trusted = points.filter((p) => p.v !== null);
  const figure = document.createElement("figure");
  figure.className = "trend";
  figure.dataset.trend = series.id;
  const axisLabel = `${kind.title}, ${kind.unit}${kind.log ? " (log scale)" : ""}`;
  const root = svg("svg", {
    viewBox: `0 0 ${TREND_W} ${TREND_H}`, role: "img", "data-points": String(trusted.length),
    "data-earliest-ms": trusted.length ? String(Math.round(trusted[0].t)) : "",
    "aria-label": `${series.space} ${axisLabel}, last ${TREND_WINDOWS_S[trends.windowS]}`,
  });
  const plotW = TREND_W - TREND_PAD.left - TREND_PAD.right;
  const plotH = TREND_H - TREND_PAD.top - TREND_PAD.bottom;
  root.appendChild(svg("rect", { x: TREND_PAD.left, y: TREND_PAD.top, width: plotW, height: plotH, class: "trend-plot" }));
  root.appendChild(svg("text", { x: TREND_PAD.left, y: TREND_H - 4, class: "trend-tick" }, `-${TREND_WINDOWS_S[trends.windowS]}`));
  root.appendChild(svg("text", { x: TREND_W - TREND_PAD.right, y: TREND_H - 4, "text-anchor": "end", class: "trend-tick" }, "now"));
  const x = (t) => TREND_PAD.left + ((t - fromMs) / (nowMs - fromMs)) * plotW;
  if (trusted.length) {
    const scale = trendScale(kind, trusted.map((p) => p.v));
    const y = (v) => TREND_PAD.top + plotH - ((scale.map(v) - scale.low) / (scale.high - scale.low)) * plotH;
    const yAt = (at) => TREND_PAD.top + plotH - ((at - scale.low) / (scale.high - scale.low)) * plotH;
    for (const tick of scale.ticks) {
      root.appendChild(svg("line", { x1: TREND_PAD.left, x2: TREND_W - TREND_PAD.right, y1: yAt(tick.at), y2: yAt(tick.at), class: "trend-grid" }));
      root.appendChild(svg("text", { x: TREND_PAD.left - 4, y: yAt(tick.at) + 4, "text-anchor": "end", class: "trend-tick" }, tick.label));
    }
    // a new segment after every gap (an untrusted value, or the feed silent for longer than STALE_AFTER_S)
    let path = "";
    let joined = false;
    for (const p of points) {
      if (p.v === null) { joined = false; continue; }
      path += `${joined ? "L" : "M"}${x(p.t).toFixed(1)} ${y(p.v).toFixed(1)} `;
      joined = true;
    }
    root.appendChild(svg("path", { d: path.trim(), class: "trend-line" }));
    const last = trusted[trusted.length - 1];
    root.appendChild(svg("circle", { cx: x(last.t), cy: y(last.v), r: 2.5, class: "trend-last" }));
  } else {
    root.appendChild(svg("text", { x: TREND_PAD.left + 8, y: TREND_PAD.top + plotH / 2, class: "stale-value" }, "no trusted values in this window"));
  }
  const caption = document.createElement("figcaption");
  const label = Object.assign(document.createElement("span"), { className: "trend-axis", textContent: axisLabel });
  label.dataset.trendAxis = series.id;
  const latest = latestText(series, nowMs, feedStale);
  const value = Object.assign(document.createElement("span"), {
    className: latest.stale ? "trend-latest stale" : "trend-latest", textContent: latest.text,
  });
  value.dataset.trendLatest = series.id;
  caption.append(label, " — ", value);
  figure.append(caption, root);
  return figure;
}

function renderTrends() {
  if (!trends.dirty) return;
  trends.dirty = false;
  const nowMs = Date.now();
  const feedStale = !hmi.state || (nowMs - hmi.stateReceivedMs) / 1000 > STALE_AFTER_S;
  const bySpace = new Map();
  for (const series of trends.series.values()) {
    if (!bySpace.has(series.space)) bySpace.set(series.space, []);
    bySpace.get(series.space).push(series);
  }
  const groups = [...bySpace.entries()].map(([space, list]) => {
    const group = document.createElement("section");
    group.className = "trend-space";
    group.dataset.trendSpace = space;
    group.appendChild(Object.assign(document.createElement("h3"), { textContent: space }));
    for (const series of list) group.appendChild(drawTrend(series, nowMs, feedStale));
    return group;
  });
  if (!groups.length) groups.push(Object.assign(document.createElement("p"), { textContent: "No data yet." }));
  document.getElementById("trends").replaceChildren(...groups);
}

function setUpTrends() {
  const choice = document.getElementById("trend-window");
  choice.replaceChildren(...Object.entries(TREND_WINDOWS_S).map(([seconds, text]) =>
    Object.assign(document.createElement("option"), { value: seconds, textContent: `last ${text}` })));
  choice.value = String(trends.windowS);
  choice.addEventListener("change", () => {
    trends.windowS = Number(choice.value);
    trends.dirty = true;
  });
  // the window slides and staleness grows even without new data: redraw at least once a second
  setInterval(() => { trends.dirty = true; }, 1000);
  setInterval(renderTrends, TREND_REDRAW_MS);
}

// ---------------------------------------------------------------------------------------------------
// the live feed

function setFeedStatus(text, down) {
  const status = document.getElementById("feed-status");
  status.textContent = text;
  status.classList.toggle("down", down);
}

function connect() {
  const scheme = location.protocol === "https:" ? "wss" : "ws";
  const socket = new WebSocket(`${scheme}://${location.host}/ws`);
  hmi.socket = socket;
  trends.connectedMs = Date.now(); // live samples from here on; the history fills the time before
  socket.addEventListener("open", () => {
    setFeedStatus("live feed: connected", false);
    loadTrendHistory();
  });
  socket.addEventListener("message", (event) => {
    const message = JSON.parse(event.data);
    if (message.type === "state") {
      hmi.state = message.data;
      hmi.stateReceivedMs = Date.now();
      recordTrends(hmi.state, hmi.stateReceivedMs);
      renderSynoptic();
      renderAge();
    } else if (message.type === "alarm") {
      refreshAlarms();
    }
  });
  socket.addEventListener("close", () => {
    setFeedStatus("live feed: DISCONNECTED — values are stale; reconnecting", true);
    setTimeout(connect, RECONNECT_MS);
  });
}

function start() {
  document.getElementById("login-form").addEventListener("submit", login);
  document.getElementById("logout-button").addEventListener("click", logout);
  setSession(hmi.token, hmi.session);
  connect();
  setInterval(renderAge, 1000);
  setUpRunPanel();
  setUpShelve();
  setUpItems();
  setUpTrends();
  setInterval(() => { refreshAlarms(); refreshPrompts(); refreshBatch(); }, POLL_MS);
}

document.addEventListener("DOMContentLoaded", start);
