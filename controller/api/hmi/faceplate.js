// Faceplates: selecting a symbol or a vessel in the process picture (click, Enter or Space) opens its
// detail beside the picture: its readings, its commands (each enabled, or disabled with the reason the
// gate's dry run gives), and the alarms that name it with their decoded text. Redrawn with every state
// message and availability reading while open; Escape or its Close button shuts it. The device behind the
// symbol (faceplate_device.js) adds its status, its decoded faults and a trend of its readings.

import { button } from "./dom.js";
import { deviceFor, deviceLines, deviceTitle, renderDeviceTrend } from "./faceplate_device.js";
import { engineering, humanText, timeOfDay } from "./format.js";
import { hmi } from "./live.js";
import { positionOf, positionWords } from "./symbols.js";
import { sendCommand, whyNot } from "./commands.js";

const COMMAND_WORDS = {
  SetPort: (a) => `${a.open ? "Open" : "Close"} ${a.port}`,
  SetValve: (a) => `${a.open ? "Open" : "Close"} ${a.valve.replaceAll("_", " ")} valve`,
  SetPump: (a) => `${a.running ? "Start" : "Stop"} pump`,
  SetTurbo: (a) => `${a.running ? "Start" : "Stop"} turbo`,
};
const DEVICE_KINDS = ["heater", "gas", "source"];
let shown = null; // the faceplate key: "port:inlet_gate", "valve:process:vent", "pump:inlet", "space:inlet"
let commandsKey = "";

function target(key) {
  const [kind, ...rest] = key.split(":");
  return { kind, name: rest[0], valve: rest[1] };
}

function titleOf(key) {
  const t = target(key);
  const device = deviceTitle(key);
  if (device) return device;
  if (t.kind === "port") return `${t.name} (${portOf(t.name) ? portOf(t.name).kind.replace("_", " ") : "port"})`;
  if (t.kind === "valve") return `${t.name} ${t.valve.replaceAll("_", " ")} valve`;
  if (t.kind === "pump") return `${t.name} pump`;
  if (t.kind === "turbo") return `${t.name} turbo`;
  const topology = hmi.topology && hmi.topology.spaces.find((s) => s.name === t.name);
  return topology ? topology.label : t.name;
}

function portOf(name) {
  return hmi.state ? hmi.state.ports.find((p) => p.name === name) : null;
}

function spaceOf(name) {
  return hmi.state ? hmi.state.spaces.find((s) => s.name === name) : null;
}

function readingsOf(key) {
  const t = target(key);
  const lines = [];
  if (t.kind === "port") {
    const port = portOf(t.name);
    if (port) lines.push(`position: ${positionWords(positionOf(port.valve, false, true))}`,
      `between: ${port.between.join(" and ")}`);
  } else {
    const space = spaceOf(t.name);
    if (!space || DEVICE_KINDS.includes(t.kind)) return lines; // their device's readings say it
    if (t.kind === "valve") {
      const valve = space.valves[t.valve];
      const switches = valve && (valve.open_ls !== null || valve.closed_ls !== null);
      if (valve) lines.push(`position: ${positionWords(positionOf(valve, false, switches))}`);
    } else if (t.kind === "pump") {
      lines.push(`pump: ${space.pump_running === null ? "unknown" : space.pump_running ? "running" : "off"}`);
    } else if (t.kind === "turbo") {
      lines.push(`speed: ${space.turbo_speed_hz === null ? "unknown" : `${space.turbo_speed_hz.toFixed(0)} Hz`}`);
    } else {
      lines.push(`atmosphere: ${space.atmosphere.replaceAll("_", " ")} — ${space.reason}`);
      lines.push(`pressure: ${engineering(space.pressure_pa, "Pa")}`);
      for (const [label, reading, unit] of [["frost point", space.frost_point, "°C"], ["O2", space.o2, "ppm"]]) {
        if (reading) lines.push(`${label}: ${reading.value === null ? "no value" : `${reading.value.toFixed(1)} ${unit}`}` +
          (reading.quality === "ok" ? "" : ` (${reading.quality.replaceAll("_", " ")})`));
      }
      if (space.exposed_items.length) lines.push(`unsealed items: ${space.exposed_items.join(", ")}`);
    }
  }
  return lines;
}

function commandsOf(key) {
  const t = target(key);
  const all = hmi.availability ? hmi.availability.commands : [];
  if (t.kind === "space") return all.filter((c) => c.action.space === t.name);
  const prefix = t.kind === "valve" ? `valve:${t.name}:${t.valve}:` : `${t.kind}:${t.name}:`;
  return all.filter((c) => c.key.startsWith(prefix));
}

function alarmsOf(key) {
  const t = target(key);
  const active = hmi.alarms ? hmi.alarms.active : [];
  const device = deviceFor(key);
  const words = DEVICE_KINDS.includes(t.kind) ? [device ? device.device : t.valve]
    : [t.name, t.valve ? `${t.name}.${t.valve}` : null, device && t.kind !== "space" ? device.device : null].filter(Boolean);
  return active.filter((a) => words.some((w) => a.id.includes(w) || (a.detail || "").includes(w) ||
    JSON.stringify(a.evidence).includes(`"${w}"`)));
}

export function renderFaceplate() {
  const panel = document.getElementById("faceplate");
  panel.hidden = !shown;
  if (!shown) return;
  document.getElementById("faceplate-title").textContent = titleOf(shown);
  const readings = document.getElementById("faceplate-readings");
  const device = deviceLines(shown);
  readings.replaceChildren(...readingsOf(shown).concat(device.readings)
    .map((text) => Object.assign(document.createElement("li"), { textContent: text })));
  document.getElementById("faceplate-device").replaceChildren(...device.status);
  document.getElementById("faceplate-device-title").hidden = !device.status.length;
  renderDeviceTrend(shown);
  const commands = commandsOf(shown);
  const holder = document.getElementById("faceplate-commands");
  const key = JSON.stringify([shown, commands.map((c) => c.key)]);
  if (key !== commandsKey) { // rebuilt only when the commands change: a rebuild would steal focus
    commandsKey = key;
    holder.replaceChildren(...commands.map((entry) => {
      const line = document.createElement("div");
      line.className = "command";
      const words = COMMAND_WORDS[entry.action.type];
      line.appendChild(button(words ? words(entry.action) : entry.key, () => sendCommand(entry.action),
        { "data-faceplate-command": entry.key }));
      line.appendChild(Object.assign(document.createElement("span"), { className: "why" }));
      return line;
    }));
    if (!commands.length) holder.textContent = "No manual commands for this.";
  }
  for (const entry of commands) {
    const node = holder.querySelector(`[data-faceplate-command="${CSS.escape(entry.key)}"]`);
    if (!node) continue;
    const reason = whyNot(entry);
    node.disabled = Boolean(reason);
    node.nextSibling.textContent = humanText(reason);
  }
  const alarms = alarmsOf(shown);
  const list = document.getElementById("faceplate-alarms");
  list.replaceChildren(...(alarms.length ? alarms.map((a) => Object.assign(document.createElement("li"), {
    textContent: `${a.severity.toUpperCase()}${a.first_out ? " (first out)" : ""}: ${a.text}` +
      `${a.detail ? ` — ${a.detail}` : ""} (raised ${timeOfDay(a.raised_at_s)}, ${a.state.replaceAll("_", " ")})`,
  })) : [Object.assign(document.createElement("li"), { textContent: "No active alarms." })]));
}

export function openFaceplate(key) {
  shown = key;
  commandsKey = "";
  renderFaceplate();
  document.getElementById("faceplate").scrollIntoView({ block: "nearest" });
}

function closeFaceplate() {
  shown = null;
  renderFaceplate();
}

export function setUpFaceplates() {
  const picture = document.getElementById("synoptic");
  const pick = (event) => {
    if (event.target.closest("[data-item]")) return; // an item opens its exposure record instead
    const node = event.target.closest("[data-faceplate]");
    if (!node) return;
    event.preventDefault();
    openFaceplate(node.getAttribute("data-faceplate"));
  };
  picture.addEventListener("click", pick);
  picture.addEventListener("keydown", (event) => {
    if (event.key === "Enter" || event.key === " ") pick(event);
  });
  document.getElementById("faceplate-close").addEventListener("click", closeFaceplate);
  document.getElementById("faceplate").addEventListener("keydown", (event) => {
    if (event.key === "Escape") closeFaceplate();
  });
}
