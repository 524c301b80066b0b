// The device behind a faceplate: which device a selected symbol is (from the topology's devices per
// space), whether it answers and is in service, the faults it reports about itself decoded into the
// manual's words (GET /api/devices, the same decoding the alarms use, so the faceplate says it even when
// the alarm was acknowledged, shelved or suppressed), its readings, and a trend of its main readings
// over the last minutes (GET /api/telemetry/<device>/<channel>, the controller's in-memory buffer).

import { svg } from "./dom.js";
import { equipment, sourceChannel, sourceWords, spaceTopology } from "./equipment.js";

const TREND_S = 300;
const TREND_READ_MS = 2000;
const CHART = { w: 340, h: 110, left: 50, right: 8, top: 8, bottom: 18 };
const TRACE_CLASSES = ["trend-line", "trend-line trend-line-2"];
const UNIT_WORDS = { degC: "°C", bool: "(0/1)" };
const unitWords = (unit) => UNIT_WORDS[unit] ?? unit;

let trendKey = "";
let trendReadMs = 0;
let trendData = [];

// key "turbo:process" -> { device, channels to trend, channel prefix whose readings belong to it }
export function deviceFor(key) {
  const [kind, name, sub] = key.split(":");
  const topology = spaceTopology(name);
  const devices = (topology && topology.devices) || {};
  if (kind === "turbo") return pick(devices.pfeiffer_turbo, ["speed"], "");
  if (kind === "heater") return pick(devices.temperature_controller, ["temperature", "setpoint"], "");
  if (kind === "gas") return pick(devices.mass_flow_controller, ["mass_flow", "setpoint"], "");
  if (kind === "source") {
    const channel = sourceChannel(name, sub);
    return pick(devices.deposition_sources, [`${channel}.power`], `${channel}.`);
  }
  if (kind === "space" && topology && topology.gauges.length) {
    const gauge = topology.gauges[0];
    return pick(gauge.device, [gauge.channel], gauge.channel);
  }
  return null;
}

function pick(device, channels, prefix) {
  return device ? { device, channels, prefix } : null;
}

function line(text, cls) {
  return Object.assign(document.createElement("li"), { textContent: text, className: cls || "" });
}

// The device's status and decoded faults, and its readings (those of the selected source only).
export function deviceLines(key) {
  const found = deviceFor(key);
  if (!found) return { status: [], readings: [] };
  const device = equipment.devices.get(found.device);
  if (!device) return { status: [line(`${found.device}: status not read yet`)], readings: [] };
  const status = [line(`${device.name} (${device.family.replaceAll("_", " ")}): ${device.status}`,
    device.status === "answering" ? "" : "fault")];
  for (const c of device.conditions) status.push(line(`${c.severity.toUpperCase()}: ${c.text} — ${c.guidance}`, "fault"));
  if (device.in_service && !device.conditions.length) status.push(line("reports no fault"));
  const readings = Object.entries(device.readings)
    .filter(([channel]) => !found.prefix || channel.startsWith(found.prefix) || channel === found.prefix)
    .map(([channel, r]) => {
      const value = r.value === null ? "no value" : `${Number.isInteger(r.value) ? r.value : r.value.toPrecision(4)} ${unitWords(r.unit)}`;
      return `${channel}: ${value}${r.quality === "ok" ? "" : ` (${r.quality.replaceAll("_", " ")})`}`;
    });
  const [kind, space, sub] = key.split(":");
  const entry = kind === "source" ? (spaceTopology(space)?.source_table || []).find((e) => e.name === sub) : null;
  if (entry) readings.unshift(`${sub}: ${sourceWords(entry, device, space).text}`);
  return { status, readings };
}

async function readTrend(found) {
  const answers = await Promise.all(found.channels.map(async (channel) => {
    const response = await fetch(`/api/telemetry/${encodeURIComponent(found.device)}/${encodeURIComponent(channel)}?seconds=${TREND_S}`,
      { cache: "no-store" });
    return response.ok ? response.json() : null;
  }));
  return answers.filter(Boolean);
}

function drawChart(series) {
  const plotW = CHART.w - CHART.left - CHART.right;
  const plotH = CHART.h - CHART.top - CHART.bottom;
  const points = series.flatMap((s) => s.points.filter((p) => p.value !== null));
  const root = svg("svg", { viewBox: `0 0 ${CHART.w} ${CHART.h}`, role: "img", "data-points": String(points.length),
    "aria-label": `the last ${TREND_S / 60} min of ${series.map((s) => s.channel).join(" and ")}` });
  root.appendChild(svg("rect", { x: CHART.left, y: CHART.top, width: plotW, height: plotH, class: "trend-plot" }));
  if (!points.length) {
    root.appendChild(svg("text", { x: CHART.left + 6, y: CHART.top + plotH / 2, class: "stale-value" }, "no trusted values"));
    return root;
  }
  const nowS = Date.now() / 1000;
  const fromS = nowS - TREND_S;
  let low = Math.min(...points.map((p) => p.value));
  let high = Math.max(...points.map((p) => p.value));
  if (high - low < 1e-9) { low -= 1; high += 1; }
  const x = (t) => CHART.left + ((t - fromS) / TREND_S) * plotW;
  const y = (v) => CHART.top + plotH - ((v - low) / (high - low)) * plotH;
  for (const [v, anchor] of [[high, CHART.top + 8], [low, CHART.top + plotH]]) {
    root.appendChild(svg("text", { x: CHART.left - 4, y: anchor, "text-anchor": "end", class: "trend-tick" }, v.toPrecision(3)));
  }
  root.appendChild(svg("text", { x: CHART.left, y: CHART.h - 4, class: "trend-tick" }, `-${TREND_S / 60} min`));
  root.appendChild(svg("text", { x: CHART.w - CHART.right, y: CHART.h - 4, "text-anchor": "end", class: "trend-tick" }, "now"));
  series.forEach((s, i) => {
    let d = "";
    let joined = false;
    for (const p of s.points) {
      if (p.value === null || p.quality !== "ok" || p.ts < fromS) { joined = false; continue; }
      d += `${joined ? "L" : "M"}${x(p.ts).toFixed(1)} ${y(p.value).toFixed(1)} `;
      joined = true;
    }
    root.appendChild(svg("path", { d: d.trim(), class: TRACE_CLASSES[i % 2], "data-channel": s.channel }));
  });
  return root;
}

// The device's trend under its faceplate, read again at most every TREND_READ_MS.
export function renderDeviceTrend(key) {
  const holder = document.getElementById("faceplate-trend");
  const found = key ? deviceFor(key) : null;
  holder.hidden = !found;
  if (!found) { trendKey = ""; return; }
  if (trendKey === key) holder.replaceChildren(caption(found), drawChart(trendData));
  if (trendKey === key && Date.now() - trendReadMs < TREND_READ_MS) return;
  if (trendKey !== key) { trendData = []; holder.replaceChildren(caption(found)); }
  trendKey = key;
  trendReadMs = Date.now();
  readTrend(found).then((series) => {
    if (trendKey !== key) return;
    trendData = series;
    holder.replaceChildren(caption(found), drawChart(series));
  }).catch(() => {});
}

function caption(found) {
  const unit = trendData.length ? unitWords(trendData[0].unit) : "";
  const words = found.channels.map((c, i) => `${c}${i === 0 ? " (solid)" : " (dashed)"}`).join(", ");
  return Object.assign(document.createElement("p"), {
    className: "faceplate-trend-caption",
    textContent: `Trend of ${found.device}: ${words}${unit ? `, ${unit}` : ""}`,
  });
}

export function deviceTitle(key) {
  const [kind, name, sub] = key.split(":");
  const topology = spaceTopology(name);
  if (kind === "heater") return `${name} substrate heater`;
  if (kind === "gas") return `${name} gas inlet${topology && topology.gas ? ` (${topology.gas})` : ""}`;
  if (kind === "source") {
    const entry = topology && topology.source_table.find((s) => s.name === sub);
    return `${name} source ${sub}${entry ? ` (${entry.kind.replaceAll("_", " ")}, ${entry.power_w[0]}–${entry.power_w[1]} W)` : ""}`;
  }
  return null;
}
