// The line synoptic: the spaces left to right along the chain of ports, each with its atmosphere, readings,
// valves and items, and the ports between them with commanded and measured positions. Redrawn on every
// "state" message; once the last state is older than STALE_AFTER_S every value says STALE.

import { refreshAvailability } from "./commands.js";
import { refreshMode } from "./statusbar.js";
import { svg } from "./dom.js";
import {
  ATMOSPHERE_WORDS, commandedPosition, disagrees, engineering, measuredPosition, readingText, timeOfDay,
} from "./format.js";
import { hmi, STALE_AFTER_S } from "./live.js";

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

export function renderSynoptic() {
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
  if (stale !== document.getElementById("synoptic").classList.contains("stale")) renderSynoptic();
}
