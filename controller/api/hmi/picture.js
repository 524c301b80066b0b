// The process picture: drawn in the browser from the line's topology (GET /api/topology, read once) and
// animated with every "state" message, so each line variant gets its picture with nothing drawn by hand.
// Spaces are vessels left to right along the chain of ports from the room; each vessel carries its
// atmosphere in words, its instruments with values and units, and its items; the ports between them are
// gate valves or doors; above a vessel its vent and gas-fill valves, below it the rough (or backing)
// valve and pump and, on a chamber, the turbo gate and turbo. ISA-101: grey is normal, colour only for
// what is abnormal. Every value says when it cannot be trusted: STALE once the last state is older than
// STALE_AFTER_S, a sensor's quality word otherwise.
// Selecting a symbol or a vessel (click, Enter or Space) opens its faceplate; an item opens its record.

import { refreshAvailability } from "./commands.js";
import { svg } from "./dom.js";
import { drawEquipmentBlock, equipmentRows } from "./equipment.js";
import { renderFaceplate } from "./faceplate.js";
import { ATMOSPHERE_WORDS, engineering, humanName, materialOf, timeOfDay } from "./format.js";
import { hmi, STALE_AFTER_S } from "./live.js";
import { refreshMode } from "./statusbar.js";
import { doorSymbol, instrument, positionOf, pumpSymbol, turboSymbol, valveSymbol } from "./symbols.js";

const WIDTH = 1240;
const PORT_GAP = 90;
const VESSEL_TOP = 84;
const ROW = 17;
const VALVE_WORDS = { rough: "rough valve", vent: "vent valve", gas_fill: "gas-fill valve", turbo_gate: "turbo gate valve" };

export async function loadTopology() {
  try {
    const response = await fetch("/api/topology");
    if (response.ok) hmi.topology = await response.json();
  } catch {
    // drawn from the state alone meanwhile (no sensors known): retried at the next state
  }
}

// Spaces left to right along the chain of ports from the room, then any the chain did not reach.
function orderedSpaces(state) {
  const order = [];
  let current = "room";
  for (let guard = 0; guard < state.ports.length; guard += 1) {
    const port = state.ports.find((p) => p.between.includes(current) &&
      p.between.some((b) => b !== current && b !== "room" && !order.includes(b)));
    if (!port) break;
    current = port.between.find((b) => b !== current);
    order.push(current);
  }
  for (const space of state.spaces) if (!order.includes(space.name)) order.push(space.name);
  return order.map((name) => state.spaces.find((s) => s.name === name)).filter(Boolean);
}

function topologyOf(name) {
  const spaces = hmi.topology ? hmi.topology.spaces : [];
  return spaces.find((s) => s.name === name) || null;
}

// The atmosphere in words; a space without a frost-point or O2 sensor cannot know air from argon, so
// what only a sensor could tell is "unknown (no sensor)", never a guess (the interlocks' conservative
// assumption is said beside it).
export function atmosphereWords(space, topology) {
  const word = ATMOSPHERE_WORDS[space.atmosphere] || space.atmosphere.toUpperCase();
  const sensed = !topology || topology.frost_sensor || topology.o2_sensor;
  if (sensed) return { word, note: "" };
  if (space.atmosphere === "air") return { word: "UNKNOWN (no sensor)", note: "treated as air by the interlocks" };
  if (space.atmosphere === "unknown") return { word: "UNKNOWN (no sensor)", note: "" };
  if (space.atmosphere === "inert_in_spec") return { word: "INERT (predicted, no sensor)", note: "" };
  return { word, note: "" };
}

function readingLine(tag, label, reading, unit, digits) {
  if (!reading) return null;
  const quality = reading.quality;
  if (reading.value === null) return { tag, text: `${label}: no value (${quality.replaceAll("_", " ")})`, quality };
  const value = `${reading.value.toFixed(digits)} ${unit}`;
  if (quality !== "ok") return { tag, text: `${label}: ${value} (${quality.replaceAll("_", " ")})`, quality };
  return { tag, text: `${label}: ${value}`, quality };
}

// The instruments in words; a chamber's heater, gas inlet and sources are drawn as symbols instead
// (equipment.js) once the topology says it has them.
function instrumentLines(space) {
  const topology = topologyOf(space.name);
  const drawn = (has) => Boolean(topology && topology[has]);
  const lines = [];
  const pressure = space.pressure_pa;
  lines.push({ tag: "PT", text: `pressure: ${engineering(pressure, "Pa")}`, quality: pressure === null ? "unknown" : "ok" });
  for (const line of [readingLine("DP", "frost point", space.frost_point, "°C", 1),
    readingLine("O2", "O2", space.o2, "ppm", 1)]) if (line) lines.push(line);
  if (space.substrate_temp_c !== null && !drawn("heater")) lines.push({ tag: "TT", text: `substrate: ${space.substrate_temp_c.toFixed(1)} °C`, quality: "ok" });
  if (space.gas_flow_sccm !== null && !drawn("gas_flow")) lines.push({ tag: "FT", text: `gas flow: ${space.gas_flow_sccm.toFixed(1)} sccm`, quality: "ok" });
  if (space.turbo_speed_hz !== null) lines.push({ tag: "ST", text: `turbo: ${space.turbo_speed_hz.toFixed(0)} Hz`, quality: "ok" });
  if (space.sources_on.length && !(topology && topology.source_table && topology.source_table.length)) lines.push({ tag: "EI", text: `sources ON: ${space.sources_on.join(", ")}`, quality: "active" });
  lines.push({ tag: "PT", text: `base pressure reached: ${space.base_pressure_reached ? "yes" : "no"}`, quality: "ok" });
  return lines;
}

// Items as the operator sees them: a container sealed or open; an air-sensitive item in its container,
// or "unsealed" when out of one. "Exposed" is the ledger's verdict, shown in the item's record.
function itemWords(item, space) {
  materialOf.set(item.id, item.material);
  const name = humanName(item.id);
  const kind = name.includes(item.kind) ? "" : `${item.kind} `; // "inlet container of J01" says it already
  if (item.kind === "container") return { text: `${name}: ${kind}${item.sealed ? "sealed" : "open"}`, bad: false };
  const where = item.location === space.name ? "" : ` in ${humanName(item.location)}`;
  const unsealed = item.exposed ? " (unsealed)" : "";
  const bad = item.exposed && !space.safe_for_exposed;
  return { text: `${name}${kind ? `: ${kind.trim()}` : ""}${where}${unsealed}${bad ? " — UNSEALED IN A NON-INERT ATMOSPHERE" : ""}`, bad };
}

function alarmedPosition(name) {
  const active = hmi.alarms ? hmi.alarms.active : [];
  return active.some((a) => a.id === `position.${name}` && a.condition_active !== false);
}

function drawVessel(root, space, items, x, width, height, stale) {
  const topology = topologyOf(space.name);
  const label = topology ? topology.label : space.name;
  const g = svg("g", { "data-space": space.name, "aria-label": `${label}`, class: "vessel", tabindex: "0",
    role: "button", "data-faceplate": `space:${space.name}` });
  g.appendChild(svg("rect", { x, y: VESSEL_TOP, width, height, rx: 16, class: "vessel-body" }));
  g.appendChild(svg("text", { x: x + 12, y: VESSEL_TOP + 20, class: "title" }, label));
  const atmosphere = atmosphereWords(space, topology);
  const abnormal = ["inert_out_of_spec"].includes(space.atmosphere) ||
    (space.exposed_items.length > 0 && !space.safe_for_exposed);
  g.appendChild(svg("rect", { x: x + 8, y: VESSEL_TOP + 28, width: width - 16, height: 24, rx: 4,
    class: `atm-box${abnormal ? " atm-abnormal" : ""}${stale ? " atm-stale" : ""}` }));
  g.appendChild(svg("text", { x: x + 16, y: VESSEL_TOP + 45, class: "atm-word", "data-atmosphere": space.name },
    stale ? `${atmosphere.word} (STALE)` : atmosphere.word));
  let y = VESSEL_TOP + 72;
  if (atmosphere.note) {
    g.appendChild(svg("text", { x: x + 16, y, class: "note" }, atmosphere.note));
    y += ROW;
  }
  for (const line of instrumentLines(space)) {
    const quality = stale ? "stale" : line.quality;
    const text = stale ? `${line.text} (STALE)` : line.text;
    g.appendChild(instrument(x + 10, y, line.tag, text, quality, {}));
    y += ROW + 2;
  }
  y = drawEquipmentBlock(g, space, topology, x + 10, y, width) + 4;
  for (const item of items) {
    const words = itemWords(item, space);
    const link = svg("a", { href: `#item-${item.id}`, class: "item-link", "data-item": item.id, role: "button",
      "aria-label": `Exposure record of ${humanName(item.id)}` });
    link.appendChild(svg("title", {}, item.id));
    link.appendChild(svg("rect", { x: x + 12, y: y - 10, width: 10, height: 10,
      class: item.kind === "container" ? (item.sealed ? "item-sealed" : "item-open") : "item-part" }));
    link.appendChild(svg("text", { x: x + 28, y, class: words.bad ? "warn" : "" }, words.text));
    g.appendChild(link);
    y += ROW;
  }
  g.appendChild(svg("title", {}, `${label}: ${atmosphere.word}. ${space.reason}`));
  root.appendChild(g);
}

// Above a vessel its vent and gas-fill valves, below its rough valve and pump and the turbo branch.
function drawEquipment(root, space, x, width, height) {
  const topology = topologyOf(space.name);
  const valves = space.valves;
  const bottom = VESSEL_TOP + height;
  const branch = (vx, y1, y2) => root.appendChild(svg("line", { x1: vx, y1, x2: vx, y2, class: "pipe" }));
  const valve = (name, vx, vy, label) => {
    const v = valves[name];
    if (!v) return;
    const hasSwitches = v.open_ls !== null || v.closed_ls !== null;
    const position = positionOf(v, alarmedPosition(`${space.name}.${name}`), hasSwitches);
    root.appendChild(valveSymbol(vx, vy, position, { "data-valve": `${space.name}:${name}`,
      "data-faceplate": `valve:${space.name}:${name}` }, `${space.name} ${VALVE_WORDS[name]}`, true));
    root.appendChild(svg("text", { x: vx + 16, y: vy + 4, class: "sym-label" }, label));
  };
  const left = x + width * 0.28;
  const right = x + width * 0.72;
  if (valves.vent) {
    branch(left, 26, VESSEL_TOP);
    valve("vent", left, 52, "vent");
    root.appendChild(svg("text", { x: left, y: 20, "text-anchor": "middle", class: "sym-label" }, "to room"));
  }
  if (valves.gas_fill) {
    branch(right, 26, VESSEL_TOP);
    valve("gas_fill", right, 52, "gas fill");
    root.appendChild(svg("text", { x: right, y: 20, "text-anchor": "middle", class: "sym-label" },
      `${topology && topology.gas ? topology.gas.split(" ")[0] : "gas"} supply`));
  }
  branch(left, bottom, bottom + 78);
  valve("rough", left, bottom + 28, topology && topology.pump === "backing" ? "backing" : "rough");
  root.appendChild(pumpSymbol(left, bottom + 78, space.pump_running, { "data-pump": space.name,
    "data-faceplate": `pump:${space.name}` }, `${space.name} ${topology ? topology.pump : "rough"} pump`));
  root.appendChild(svg("text", { x: left + 20, y: bottom + 82, class: "sym-label" },
    space.pump_running === null ? "pump ?" : space.pump_running ? "pump on" : "pump off"));
  const hasTurbo = topology ? topology.turbo : space.turbo_speed_hz !== null;
  if (valves.turbo_gate || hasTurbo) {
    branch(right, bottom, bottom + 78);
    valve("turbo_gate", right, bottom + 28, "turbo gate");
    if (hasTurbo) {
      root.appendChild(turboSymbol(right, bottom + 78, space.turbo_speed_hz, { "data-turbo": space.name,
        "data-faceplate": `turbo:${space.name}` }, `${space.name} turbo`));
      root.appendChild(svg("text", { x: right + 22, y: bottom + 82, class: "sym-label" },
        space.turbo_speed_hz === null ? "? Hz" : `${space.turbo_speed_hz.toFixed(0)} Hz`));
    }
  }
}

function drawPort(root, port, x, midY, stale) {
  const alarmed = alarmedPosition(port.name);
  const position = positionOf(port.valve, alarmed, true);
  const topo = hmi.topology ? hmi.topology.ports.find((p) => p.name === port.name) : null;
  const label = topo ? topo.label : port.name;
  root.appendChild(svg("line", { x1: x - PORT_GAP / 2, y1: midY, x2: x + PORT_GAP / 2, y2: midY, class: "pipe pipe-wide" }));
  const attrs = { "data-port": port.name, "data-faceplate": `port:${port.name}`, "aria-label": `${label}` };
  const symbol = port.kind === "gate_valve"
    ? valveSymbol(x, midY, position, attrs, label, false)
    : doorSymbol(x, midY, position, attrs, label);
  root.appendChild(symbol);
  const words = { open: "open", closed: "closed", travel: "moving", disagree: "DISAGREES", unknown: "unknown" };
  const cmd = position.commanded === "none" ? "—" : position.commanded;
  const meas = position.measured === "fault" ? "both LS" : position.measured;
  const lines = [port.name, `cmd: ${cmd}`, `meas: ${meas}`];
  if (position.shown === "disagree" || position.shown === "travel") lines.push(words[position.shown]);
  if (stale) lines.push("(STALE)");
  lines.forEach((text, i) => {
    const cls = i === 0 ? "port-name" : text === "DISAGREES" ? "warn" : stale ? "stale-value" : "";
    symbol.appendChild(svg("text", { x, y: midY + 58 + i * 14, "text-anchor": "middle", class: cls }, text));
  });
}

export function renderPicture() {
  const state = hmi.state;
  const holder = document.getElementById("synoptic");
  if (!state) return;
  if (!hmi.topology && !hmi.topologyAsked) {
    hmi.topologyAsked = true;
    loadTopology().then(() => { hmi.topologyAsked = false; if (hmi.topology) renderPicture(); });
  }
  const stale = (Date.now() - hmi.stateReceivedMs) / 1000 > STALE_AFTER_S;
  holder.classList.toggle("stale", stale);
  const spaces = orderedSpaces(state);
  const spaceWidth = (WIDTH - PORT_GAP * (spaces.length + 1)) / Math.max(spaces.length, 1);
  const itemsIn = (name) => state.items.filter((i) => i.space === name);
  const rows = Math.max(...spaces.map((s) => instrumentLines(s).length + itemsIn(s.name).length + 1 +
    equipmentRows(topologyOf(s.name), spaceWidth)), 7);
  const height = 80 + rows * (ROW + 1);
  const root = svg("svg", {
    viewBox: `0 0 ${WIDTH} ${VESSEL_TOP + height + 110}`, role: "img", class: "picture",
    "aria-label": `Process picture of line ${state.line}: ` +
      spaces.map((s) => `${s.name} ${atmosphereWords(s, topologyOf(s.name)).word}`).join(", "),
  });
  const portAt = (a, b) => state.ports.find((p) => p.between.includes(a) && p.between.includes(b));
  const midY = VESSEL_TOP + height / 2;
  let x = PORT_GAP;
  let previous = "room";
  const drawn = new Set();
  for (const space of spaces) {
    drawVessel(root, space, itemsIn(space.name), x, spaceWidth, height, stale);
    drawEquipment(root, space, x, spaceWidth, height);
    const port = portAt(previous, space.name);
    if (port && !drawn.has(port.name)) { drawPort(root, port, x - PORT_GAP / 2, midY, stale); drawn.add(port.name); }
    previous = space.name;
    x += spaceWidth + PORT_GAP;
  }
  const last = portAt(previous, "room");
  if (last && !drawn.has(last.name)) { drawPort(root, last, x - PORT_GAP / 2, midY, stale); drawn.add(last.name); }
  // ports off the chain (a shared antechamber's second door): drawn under the picture, still live
  let extraX = 60;
  for (const port of state.ports.filter((p) => !drawn.has(p.name))) {
    drawPort(root, port, extraX, VESSEL_TOP + height + 40, stale);
    extraX += PORT_GAP * 1.4;
  }
  // the drawing is rebuilt on every state message: whatever had the keyboard focus gets it back
  const focusKey = (node) => node && (node.getAttribute("data-item") ? `item:${node.getAttribute("data-item")}`
    : node.getAttribute("data-faceplate"));
  const focused = holder.contains(document.activeElement) ? focusKey(document.activeElement) : null;
  holder.replaceChildren(root);
  if (focused) {
    const again = [...root.querySelectorAll("[data-item], [data-faceplate]")].find((node) => focusKey(node) === focused);
    if (again) again.focus();
  }
  document.getElementById("line-name").textContent = state.line;
  renderFaceplate();
  refreshAvailability(false);
  refreshMode(false);
}

export function renderAge() {
  const label = document.getElementById("state-age");
  if (!hmi.state) { label.textContent = "(no data yet)"; return; }
  const age = (Date.now() - hmi.stateReceivedMs) / 1000;
  const stale = age > STALE_AFTER_S;
  label.textContent = stale ? `STALE: last update ${age.toFixed(0)} s ago` : `updated ${timeOfDay(hmi.state.ts)}`;
  label.classList.toggle("stale", stale);
  if (stale !== document.getElementById("synoptic").classList.contains("stale")) renderPicture();
}
