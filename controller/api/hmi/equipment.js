// A process chamber's own equipment on the process picture: its deposition sources (each with its kind's
// symbol, its output and power), its substrate heater (setpoint against measured temperature) and its gas
// inlet (the supply's gas, flow against setpoint). Drawn from the topology (the source table and the
// devices bound to the chamber) and animated from GET /api/devices, read every DEVICES_MS: the same read
// gives each device's status and decoded faults to its faceplate.
// ISA-101: an energised source is dark grey like an open valve (a state, not an alarm); colour only for
// what is abnormal: a source's latched fault, a heater or MFC reporting a fault, a value that cannot be
// trusted (stale, unknown) drawn as such with its word.

import { svg } from "./dom.js";
import { hmi, STALE_AFTER_S } from "./live.js";

const DEVICES_MS = 2000; // as the alarms and prompts: a faceplate's detail, not an interlock
const SOURCE_W = 54;
const HIT = 58; // a 40 px target for a finger at 1280x800 (as the symbols', symbols.js), overlapping a little
const SOURCE_ROW = 44;
const LINE = 19;
const SOURCE_TAGS = { dc_sputter: "DC", rf_sputter: "RF", evaporation: "EV", pulsed_laser: "PLD", ion_source: "ION" };
const SOURCE_WORDS = {
  dc_sputter: "DC sputter source", rf_sputter: "RF sputter source", evaporation: "evaporation source",
  pulsed_laser: "pulsed laser", ion_source: "ion source (ion plating)",
};

export const equipment = { devices: new Map(), readMs: 0 };

export function setUpEquipment() {
  let reading = false; // one read at a time: a slow controller is not asked twice
  const read = async () => {
    if (reading) return;
    reading = true;
    try {
      const response = await fetch("/api/devices", { cache: "no-store" });
      if (!response.ok) return;
      const answer = await response.json();
      equipment.devices = new Map(answer.devices.map((d) => [d.name, d]));
      equipment.readMs = Date.now();
    } catch {
      // the readings age into "stale" on screen; the next read retries
    } finally {
      reading = false;
    }
  };
  read();
  setInterval(read, DEVICES_MS);
}

// The device of `family` bound to a space (topology), and its answer from /api/devices.
export function deviceOf(topology, family) {
  const name = topology && topology.devices ? topology.devices[family] : undefined;
  return name ? { name, device: equipment.devices.get(name) || null } : null;
}

// A reading's value if it can be trusted, else null with the word saying why; a read of /api/devices
// older than its interval and the feed's staleness makes every value STALE, however good it was then.
export function trusted(device, channel) {
  const reading = device && device.readings ? device.readings[channel] : undefined;
  if (!reading) return { value: null, why: "unknown" };
  if (Date.now() - equipment.readMs > DEVICES_MS + STALE_AFTER_S * 1000) return { value: reading.value, why: "STALE" };
  if (reading.value === null) return { value: null, why: reading.quality.replaceAll("_", " ") };
  if (reading.quality !== "ok") return { value: reading.value, why: reading.quality.replaceAll("_", " ") };
  return { value: reading.value, why: "" };
}

function number(read, digits, unit) {
  if (read.value === null) return read.why;
  return `${read.value.toFixed(digits)} ${unit}${read.why ? ` (${read.why})` : ""}`;
}

// A source's channels on its device: the source table names a second chamber's sources
// "process2.dc_sputter", its device names them "dc_sputter" (as the interlocks strip it).
export function sourceChannel(space, name) {
  return name.startsWith(`${space}.`) ? name.slice(space.length + 1) : name;
}

export function sourceState(device, name) {
  const on = trusted(device, `${name}.output_on`);
  const fault = trusted(device, `${name}.fault`); // the latched fault code, 0 for none
  if (fault.value !== null && fault.value > 0) return "fault";
  if (on.value === null || on.why) return "unknown";
  return on.value >= 0.5 ? "on" : "off";
}

export function sourceWords(entry, device, space) {
  const channel = sourceChannel(space, entry.name);
  const state = sourceState(device, channel);
  const power = trusted(device, `${channel}.power`);
  const latched = device && device.latched ? device.latched[channel] : undefined;
  const words = { on: "ON", off: "off", unknown: "state unknown", fault: `FAULT latched${latched ? `: ${latched}` : ""}` }[state];
  return { state, text: `${words}, ${number(power, 0, "W")}`,
    short: state === "on" ? number(power, 0, "W") : state === "fault" ? "FAULT" : state === "unknown" ? "?" : "off" };
}

export function heaterWords(device) {
  const pv = trusted(device, "temperature");
  const sp = trusted(device, "setpoint");
  return `SP ${number(sp, 0, "°C")} · PV ${number(pv, 1, "°C")}`.replace(" °C ·", " ·");
}

export function gasWords(device, supply) {
  const flow = trusted(device, "mass_flow");
  const sp = trusted(device, "setpoint");
  return `${supply || "gas"}: ${number(flow, 1, "sccm")}${sp.value === null ? "" : ` (SP ${sp.value.toFixed(1)})`}`;
}

function faulted(found) {
  const device = found && found.device;
  return Boolean(device && (device.conditions.length || device.status.startsWith("NOT ANSWERING")));
}

function sourceShape(g, kind, x, y) {
  if (kind === "evaporation") {
    g.appendChild(svg("polygon", { points: `${x - 16},${y - 9} ${x + 16},${y - 9} ${x + 10},${y + 9} ${x - 10},${y + 9}`, class: "sym-body" }));
  } else if (kind === "pulsed_laser") {
    g.appendChild(svg("polygon", { points: `${x},${y - 12} ${x + 16},${y} ${x},${y + 12} ${x - 16},${y}`, class: "sym-body" }));
  } else if (kind === "ion_source") {
    g.appendChild(svg("circle", { cx: x, cy: y, r: 12, class: "sym-body" }));
  } else {
    g.appendChild(svg("rect", { x: x - 16, y: y - 9, width: 32, height: 18, rx: 2, class: "sym-body" }));
  }
}

// Rows the equipment block takes, for the vessel's height.
export function equipmentRows(topology, width) {
  if (!topology) return 0;
  const perRow = Math.max(1, Math.floor((width - 20) / SOURCE_W));
  const sources = topology.source_table ? topology.source_table.length : 0;
  return (topology.heater ? 1 : 0) + (topology.gas_flow ? 1 : 0) + Math.ceil(sources / perRow) * 2.4;
}

// The chamber's equipment drawn into `g` from (x, y) across `width`; returns the y below it.
export function drawEquipmentBlock(g, space, topology, x, y, width) {
  if (!topology) return y;
  if (topology.heater) {
    const found = deviceOf(topology, "temperature_controller");
    const bad = faulted(found);
    const item = svg("g", { class: `symbol heater${bad ? " eq-fault" : ""}`, tabindex: "0", role: "button",
      "data-heater": space.name, "data-faceplate": `heater:${space.name}`, "aria-label": `${space.name} substrate heater` });
    item.appendChild(svg("rect", { x: x - 6, y: y - 16, width: 60, height: LINE + 2, class: "hit" }));
    item.appendChild(svg("rect", { x, y: y - 12, width: 18, height: 12, class: "sym-body" }));
    item.appendChild(svg("polyline", { points: `${x + 2},${y - 6} ${x + 5},${y - 10} ${x + 9},${y - 2} ${x + 13},${y - 10} ${x + 16},${y - 6}`, class: "heater-coil" }));
    const text = `${heaterWords(found && found.device)}${bad ? " FAULT" : ""}`;
    item.appendChild(svg("text", { x: x + 24, y, class: bad ? "warn" : "inst-value" }, text));
    item.appendChild(svg("title", {}, `substrate heater: ${text}`));
    g.appendChild(item);
    y += LINE;
  }
  if (topology.gas_flow) {
    const found = deviceOf(topology, "mass_flow_controller");
    const bad = faulted(found);
    const item = svg("g", { class: `symbol gas${bad ? " eq-fault" : ""}`, tabindex: "0", role: "button",
      "data-gas": space.name, "data-faceplate": `gas:${space.name}`, "aria-label": `${space.name} gas inlet` });
    item.appendChild(svg("rect", { x: x - 6, y: y - 16, width: 60, height: LINE + 2, class: "hit" }));
    item.appendChild(svg("line", { x1: x, y1: y - 6, x2: x + 12, y2: y - 6, class: "pipe" }));
    item.appendChild(svg("polygon", { points: `${x + 12},${y - 11} ${x + 19},${y - 6} ${x + 12},${y - 1}`, class: "sym-body" }));
    const text = `${gasWords(found && found.device, topology.gas.split(" ")[0])}${bad ? " FAULT" : ""}`;
    item.appendChild(svg("text", { x: x + 24, y, class: bad ? "warn" : "inst-value" }, text));
    item.appendChild(svg("title", {}, `gas inlet (mass-flow controller), ${topology.gas || "no supply"}: ${text}`));
    g.appendChild(item);
    y += LINE;
  }
  const sources = topology.source_table || [];
  if (!sources.length) return y;
  const found = deviceOf(topology, "deposition_sources");
  const device = found && found.device;
  const perRow = Math.max(1, Math.floor((width - 20) / SOURCE_W));
  y += 6;
  sources.forEach((entry, i) => {
    const cx = x + SOURCE_W / 2 + (i % perRow) * SOURCE_W;
    const cy = y + Math.floor(i / perRow) * SOURCE_ROW + 8;
    const words = sourceWords(entry, device, space.name);
    const item = svg("g", { class: `symbol source src-${words.state}`, tabindex: "0", role: "button",
      "data-source": `${space.name}:${entry.name}`, "data-state": words.state,
      "data-faceplate": `source:${space.name}:${entry.name}`, "aria-label": `${SOURCE_WORDS[entry.kind] || entry.kind} ${entry.name}` });
    item.appendChild(svg("rect", { x: cx - HIT / 2, y: cy + 5 - HIT / 2, width: HIT, height: HIT, class: "hit" }));
    sourceShape(item, entry.kind, cx, cy);
    item.appendChild(svg("text", { x: cx, y: cy + 4, "text-anchor": "middle", class: "sym-tag src-tag" }, SOURCE_TAGS[entry.kind] || "SRC"));
    item.appendChild(svg("text", { x: cx, y: cy + 25, "text-anchor": "middle", class: words.state === "fault" ? "warn" : "src-power" }, words.short));
    if (words.state === "unknown") item.appendChild(svg("text", { x: cx + 15, y: cy - 8, class: "mark-unknown" }, "?"));
    item.appendChild(svg("title", {}, `${SOURCE_WORDS[entry.kind] || entry.kind} ${entry.name}: ${words.text}`));
    g.appendChild(item);
  });
  return y + Math.ceil(sources.length / perRow) * SOURCE_ROW;
}

export function spaceTopology(name) {
  const spaces = hmi.topology ? hmi.topology.spaces : [];
  return spaces.find((s) => s.name === name) || null;
}
