// The command buttons (one group per port and per space, enabled only for a session with command
// permission) and the last command's result: done, or refused with the readings behind the refusal in the
// operator's words, or failed.

import { button } from "./dom.js";
import { engineering } from "./format.js";
import { hmi } from "./live.js";
import { api } from "./session.js";

let controlsKey = "";

// The controls are rebuilt at the next state message: a new session may command differently.
export function forgetControls() {
  controlsKey = "";
}

export function renderControls(spaces, ports) {
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

async function sendCommand(action) {
  try {
    const record = await api("/api/commands", { method: "POST", body: JSON.stringify(action) });
    showResult(record);
  } catch (error) {
    showError(`Not sent: ${error.message}`);
  }
}
