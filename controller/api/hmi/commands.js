// The command buttons (one group per port and per space) and the last command's result: done, or refused
// with the readings behind the refusal in the operator's words, or failed.
// The buttons are the commands GET /api/commands/availability lists, each enabled only when the gate would
// allow it now (its dry run: the mode, then the interlocks) and the session may command; a disabled button
// has the reason next to it. The list is re-read at most every AVAILABILITY_MS while states arrive, and
// right after a command. The gate still judges whatever is sent.

import { button } from "./dom.js";
import { renderFaceplate } from "./faceplate.js";
import { engineering, humanText } from "./format.js";
import { hmi } from "./live.js";
import { api } from "./session.js";

const AVAILABILITY_MS = 1000;
let controlsKey = "";
let asked = 0; // when the availability was last asked for (ms)
let asking = false;

// The controls are rebuilt at the next state message: a new session may command differently.
export function forgetControls() {
  controlsKey = "";
  asked = 0;
}

// Called at every state message; reads the availability when the last reading is old enough.
export async function refreshAvailability(force) {
  if (asking || (!force && Date.now() - asked < AVAILABILITY_MS)) return;
  asking = true;
  asked = Date.now();
  try {
    hmi.availability = await api("/api/commands/availability");
    renderControls();
    renderFaceplate();
  } catch {
    // the next state message asks again; the buttons keep their last verdicts meanwhile
  } finally {
    asking = false;
  }
}

const COMMAND_WORDS = {
  SetPort: (a) => `${a.open ? "Open" : "Close"} ${a.port}`,
  SetValve: (a) => `${a.open ? "Open" : "Close"} ${a.valve.replaceAll("_", " ")}`,
  SetPump: (a) => `Pump ${a.running ? "on" : "off"}`,
  SetTurbo: (a) => `Turbo ${a.running ? "on" : "off"}`,
};

function groupOf(action) {
  return action.port !== undefined ? `Port ${action.port}` : `Space ${action.space}`;
}

// Why a command cannot be sent now, or "" when it can: the session first, then the gate's dry run.
export function whyNot(entry) {
  const may = Boolean(hmi.session && hmi.session.permissions.includes("command"));
  if (!may) return (hmi.availability && hmi.availability.login) || "log in to command the line";
  return entry.allowed ? "" : entry.reason;
}

export function renderControls() {
  const availability = hmi.availability;
  if (!availability) return;
  const holder = document.getElementById("controls");
  const may = Boolean(hmi.session && hmi.session.permissions.includes("command"));
  document.getElementById("controls-hint").hidden = may;
  const key = JSON.stringify(availability.commands.map((c) => c.key));
  if (key !== controlsKey) { // rebuilt only when the set of commands changes: a rebuild steals focus
    controlsKey = key;
    const groups = new Map();
    for (const entry of availability.commands) {
      const name = groupOf(entry.action);
      if (!groups.has(name)) {
        const set = document.createElement("fieldset");
        set.appendChild(Object.assign(document.createElement("legend"), { textContent: name }));
        groups.set(name, set);
      }
      const line = document.createElement("div");
      line.className = "command";
      const words = COMMAND_WORDS[entry.action.type];
      const action = entry.action;
      line.appendChild(button(words ? words(action) : entry.key, () => sendCommand(action),
        { "data-command": entry.key, "aria-describedby": `why-${entry.key}` }));
      line.appendChild(Object.assign(document.createElement("span"),
        { className: "why", id: `why-${entry.key}` }));
      line.lastChild.setAttribute("data-why", entry.key);
      groups.get(name).appendChild(line);
    }
    holder.replaceChildren(...groups.values());
  }
  // a reason every command shares (the mode's, or the session's) is said once above the buttons
  const shared = may ? sharedReason(availability.commands) : "";
  const top = document.getElementById("controls-mode");
  top.textContent = shared ? `Manual commands refused now: ${humanText(shared)}` : "";
  top.title = shared || "";
  top.hidden = !shared;
  for (const entry of availability.commands) {
    const node = holder.querySelector(`[data-command="${CSS.escape(entry.key)}"]`);
    const why = holder.querySelector(`[data-why="${CSS.escape(entry.key)}"]`);
    if (!node || !why) continue;
    const reason = whyNot(entry);
    node.disabled = Boolean(reason);
    node.title = reason;
    const said = !may ? "controls-hint" : shared ? "controls-mode" : `why-${entry.key}`;
    node.setAttribute("aria-describedby", said);
    why.textContent = said === `why-${entry.key}` ? humanText(reason) : "";
  }
}

// A reason every command shares (the mode's, or the session's): shown once above the buttons.
function sharedReason(commands) {
  const reasons = new Set(commands.map(whyNot));
  if (reasons.size !== 1) return "";
  const [only] = reasons;
  return only;
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

export function evidenceText(key, value) {
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

export function showError(text) {
  const box = document.getElementById("command-result");
  box.className = "result failed";
  box.textContent = text;
}

export async function sendCommand(action) {
  try {
    const record = await api("/api/commands", { method: "POST", body: JSON.stringify(action) });
    showResult(record);
    refreshAvailability(true);
  } catch (error) {
    showError(`Not sent: ${error.message}`);
  }
}
