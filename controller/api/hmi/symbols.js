// The process picture's standard symbols (ISA-5.1 shapes, ISA-101 colouring): a valve is a bow-tie, a door
// a slab across the pipe, a pump a circle with its triangle, a turbo a trapezoid, an instrument a circle
// with its tag. Grey is normal; colour appears only for what is abnormal (a disagreement, a fault).
// Every symbol carries its state as data-* attributes and words in its <title>, so a test and a screen
// reader see what the eye sees.
//
// Position states, drawn distinctly:
//   open      filled dark grey               closed   white with a dark outline
//   travel    half filled (moving, within its travel time)
//   disagree  red outline and a red "≠": commanded one way, the limit switches say otherwise (or both)
//   unknown   dashed outline and "?": no limit switch; the fill shows only what was commanded

import { svg } from "./dom.js";

// Every symbol has a transparent hit square HIT wide around its centre: a finger on a touch panel
// (the picture is drawn at ~0.7 of its units at 1280x800) gets a 40 px target however small the shape.
const HIT = 58;

function hitArea(g, x, y) {
  g.appendChild(svg("rect", { x: x - HIT / 2, y: y - HIT / 2, width: HIT, height: HIT, class: "hit" }));
}

export function positionOf(valve, alarmed, hasSwitches) {
  const commanded = valve.commanded_open === null ? "none" : valve.commanded_open ? "open" : "closed";
  if (!hasSwitches || (valve.open_ls === null && valve.closed_ls === null)) return { commanded, measured: "unknown", shown: "unknown" };
  if (valve.open_ls && valve.closed_ls) return { commanded, measured: "fault", shown: "disagree" };
  const measured = valve.confirmed_open ? "open" : valve.confirmed_closed ? "closed" : "between";
  if (alarmed) return { commanded, measured, shown: "disagree" };
  if (commanded !== "none" && commanded !== measured) return { commanded, measured, shown: "travel" };
  return { commanded, measured, shown: measured === "between" ? "travel" : measured };
}

const POSITION_WORDS = {
  open: "open", closed: "closed", travel: "travelling", disagree: "DISAGREES", unknown: "position unknown (no limit switch)",
};

export function positionWords(position) {
  const cmd = position.commanded === "none" ? "not commanded" : `commanded ${position.commanded}`;
  if (position.shown === "unknown") return `${cmd}; no limit switch`;
  if (position.shown === "disagree") {
    const meas = position.measured === "fault" ? "both limit switches on" : `limit switches say ${position.measured}`;
    return `${cmd} but ${meas} — DISAGREES`;
  }
  return `${cmd}; measured ${position.measured}`;
}

function fillOf(position) {
  if (position.shown === "unknown") return position.commanded === "open" ? "sym-open" : "sym-closed";
  if (position.shown === "travel") return "sym-travel";
  if (position.shown === "disagree") return position.measured === "open" ? "sym-open" : "sym-closed";
  return position.shown === "open" ? "sym-open" : "sym-closed";
}

function stateClass(position) {
  return `${fillOf(position)} pos-${position.shown}`;
}

// A valve bow-tie centred at (x, y), horizontal (along the pipe) unless `vertical`.
export function valveSymbol(x, y, position, attrs, label, vertical) {
  const g = svg("g", { ...attrs, "data-position": position.shown, "data-commanded": position.commanded,
    "data-measured": position.measured, class: `symbol valve ${stateClass(position)}`, tabindex: "0", role: "button" });
  const s = 11;
  hitArea(g, x, y);
  const points = vertical
    ? `${x - s},${y - s} ${x + s},${y - s} ${x - s},${y + s} ${x + s},${y + s}`
    : `${x - s},${y - s} ${x - s},${y + s} ${x + s},${y - s} ${x + s},${y + s}`;
  g.appendChild(svg("polygon", { points, class: "sym-body" }));
  if (position.shown === "travel") {
    const half = vertical
      ? `${x - s},${y - s} ${x + s},${y - s} ${x},${y}`
      : `${x - s},${y - s} ${x - s},${y + s} ${x},${y}`;
    g.appendChild(svg("polygon", { points: half, class: "sym-half" }));
  }
  mark(g, x, y, position);
  g.appendChild(svg("title", {}, `${label}: ${positionWords(position)}`));
  return g;
}

// A door or gate slab across a horizontal pipe at (x, y): closed blocks the pipe, open is lifted clear.
export function doorSymbol(x, y, position, attrs, label) {
  const g = svg("g", { ...attrs, "data-position": position.shown, "data-commanded": position.commanded,
    "data-measured": position.measured, class: `symbol door ${stateClass(position)}`, tabindex: "0", role: "button" });
  const lifted = position.shown === "open" || (position.shown === "unknown" && position.commanded === "open");
  const top = lifted ? y - 44 : position.shown === "travel" ? y - 30 : y - 16;
  hitArea(g, x, y - 16);
  g.appendChild(svg("rect", { x: x - 5, y: y - 48, width: 10, height: 64, class: "door-frame" }));
  g.appendChild(svg("rect", { x: x - 7, y: top, width: 14, height: 32, rx: 2, class: "sym-body" }));
  mark(g, x, y + 28, position);
  g.appendChild(svg("title", {}, `${label}: ${positionWords(position)}`));
  return g;
}

function mark(g, x, y, position) {
  if (position.shown === "disagree") {
    g.appendChild(svg("text", { x: x + 14, y: y - 8, class: "mark-bad" }, "≠"));
  } else if (position.shown === "unknown") {
    g.appendChild(svg("text", { x: x + 13, y: y - 8, class: "mark-unknown" }, "?"));
  }
}

// A pump (circle and triangle), running filled; unknown dashed with "?".
export function pumpSymbol(x, y, running, attrs, label) {
  const word = running === null ? "unknown" : running ? "running" : "off";
  const g = svg("g", { ...attrs, "data-running": word, class: `symbol pump run-${word}`, tabindex: "0", role: "button" });
  hitArea(g, x, y);
  g.appendChild(svg("circle", { cx: x, cy: y, r: 15, class: "sym-body" }));
  g.appendChild(svg("polygon", { points: `${x - 9},${y + 8} ${x + 9},${y + 8} ${x},${y - 11}`, class: "pump-triangle" }));
  if (running === null) g.appendChild(svg("text", { x: x + 17, y: y - 8, class: "mark-unknown" }, "?"));
  g.appendChild(svg("title", {}, `${label}: ${word}`));
  return g;
}

// A turbo pump (trapezoid, wide side to the chamber) with its speed.
export function turboSymbol(x, y, speedHz, attrs, label) {
  const word = speedHz === null ? "unknown" : speedHz > 1 ? "spinning" : "stopped";
  const g = svg("g", { ...attrs, "data-running": word, class: `symbol turbo run-${word}`, tabindex: "0", role: "button" });
  hitArea(g, x, y);
  g.appendChild(svg("polygon", { points: `${x - 18},${y - 12} ${x + 18},${y - 12} ${x + 10},${y + 12} ${x - 10},${y + 12}`,
    class: "sym-body" }));
  g.appendChild(svg("text", { x, y: y + 4, "text-anchor": "middle", class: "sym-tag" }, "TMP"));
  g.appendChild(svg("title", {}, `${label}: ${word}${speedHz === null ? "" : `, ${speedHz.toFixed(0)} Hz`}`));
  return g;
}

// An instrument bubble with its tag (PT, DP, O2, TT, FT) and its value beside it; the value's look says
// how far it can be trusted: good, stale, unknown or out of service.
export function instrument(x, y, tag, text, quality, attrs) {
  const g = svg("g", { ...attrs, "data-quality": quality, class: `instrument q-${quality}` });
  g.appendChild(svg("circle", { cx: x + 9, cy: y - 4, r: 9, class: "inst-bubble" }));
  g.appendChild(svg("text", { x: x + 9, y: y - 1, "text-anchor": "middle", class: "inst-tag" }, tag));
  g.appendChild(svg("text", { x: x + 22, y, class: "inst-value" }, text));
  return g;
}
