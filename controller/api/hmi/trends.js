// Trends: one chart per space, its quantities on one time axis: pressure on the left axis (log scale),
// frost point and substrate temperature on the right (°C, linear), one cursor reading every trace. Kept in
// the page from the "state" messages it already receives; a window reaching before what the page holds is
// filled from the flight recorder (trend_record.js), drawn in the same line. Bounded three ways: at most one sample per
// TREND_SAMPLE_MS per series, at most TREND_MAX_POINTS kept (older half thinned when full, so recent
// minutes stay fine and hours stay coarse), at most TREND_MAX_DRAWN drawn, and a redraw at most every
// TREND_REDRAW_MS. A value that cannot be trusted (no value, sensor quality not ok, feed silent for more
// than STALE_AFTER_S) is a gap in the line, never a line drawn through it.
// On load and after every reconnect the page seeds its series with the controller's history
// (GET /api/trends, sampled whether or not a page was open): one answer per window, coarse to fine, so the
// last minutes come at the controller's full rate and the hours coarser. History only fills time before
// the first live sample since the (re)connect, and a seam wider than the feed's staleness is a gap.

import { svg } from "./dom.js";
import { hmi, STALE_AFTER_S } from "./live.js";
import { askRecord, record, withRecord } from "./trend_record.js";

const TREND_WINDOWS_S = { 300: "5 min", 1800: "30 min", 7200: "2 h", 28800: "8 h", 86400: "24 h" };
const TREND_SAMPLE_MS = 1000;
const TREND_KEEP_S = 7200; // what the page keeps of its own; before that the flight recorder answers
const TREND_MAX_WINDOW_S = 86400;
const RECORD_REACH_S = 7 * 86400; // how far back the operator may pan into the record
const RECORD_MARGIN_MS = 5000;
const TREND_MAX_POINTS = 2400;
const TREND_MAX_DRAWN = 300;
const TREND_REDRAW_MS = 500;
const TREND_HISTORY_WINDOWS_S = [7200, 1800, 300]; // coarse to fine; each finer answer wins where both cover
const TREND_W = 460;
const TREND_H = 150;
const TREND_PAD = { left: 58, right: 46, top: 8, bottom: 22 };
export const TREND_KINDS = [
  { key: "pressure", title: "pressure", unit: "Pa", log: true, value: (s) => s.pressure_pa },
  { key: "frost", title: "frost point", unit: "°C", log: false, has: (s) => s.frost_point !== null,
    value: (s) => (s.frost_point.quality === "ok" ? s.frost_point.value : null) },
  { key: "substrate", title: "substrate temperature", unit: "°C", log: false,
    has: (s) => s.substrate_temp_c !== null, value: (s) => s.substrate_temp_c },
];

const TREND_MIN_WINDOW_S = 30;
const CURSOR_STEPS = 60; // an arrow key moves the cursor by 1/60 of the window

// endMs null: the charts follow now (live); a number: the window ends there (panned into the past).
// cursorMs: the instant every chart reads out (null: no cursor).
export const trends = {
  series: new Map(), windowS: 300, endMs: null, cursorMs: null, dirty: false, layoutKey: "", connectedMs: 0,
  historySampleMs: 0, clockOffsetMs: 0,
};

function spanWords(seconds) {
  if (TREND_WINDOWS_S[seconds]) return TREND_WINDOWS_S[seconds];
  if (seconds < 600) return `${Math.round(seconds)} s`;
  if (seconds < 7200) return `${Math.round(seconds / 60)} min`;
  return `${(seconds / 3600).toFixed(1)} h`;
}

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

export function recordTrends(state, nowMs) {
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
  trends.clockOffsetMs = offsetMs; // the flight recorder's times are the controller's clock too
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

export async function loadTrendHistory() {
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

// The series' value at an instant: the last sample at or before it, unless that sample is untrusted or
// older than the feed's staleness (then there is no value to read there).
export function valueAt(series, ms) {
  let found = null;
  for (const p of withRecord(series)) {
    if (p.t > ms) break;
    found = p;
  }
  if (!found) return { v: null, why: "no data" };
  if (found.v === null) return { v: null, why: found.r && found.quiet ? "no value (nothing recorded)" : "no trusted value" };
  const quietMs = found.r ? record.holdMs : STALE_AFTER_S * 1000 + (found.h ? trends.historySampleMs : 0);
  if (ms - found.t > quietMs) return { v: null, why: found.r ? "no value (nothing recorded)" : "no value (feed silent)" };
  return { v: found.v, why: "" };
}

function shownValue(kind, v) {
  return kind.log ? `${v.toExponential(2)} ${kind.unit}` : `${v.toFixed(1)} ${kind.unit}`;
}

function cursorText(series) {
  if (trends.cursorMs === null) return "";
  const at = valueAt(series, trends.cursorMs);
  const when = new Date(trends.cursorMs).toLocaleTimeString();
  return `at ${when}: ${at.v === null ? at.why : shownValue(series.kind, at.v)}`;
}

// One chart per space, every quantity on one time axis: pressure on the left (log scale), the
// temperatures (frost point, substrate) on the right sharing one °C scale. Each trace is a <g
// data-trace> with its own point count; one cursor reads every trace at its instant.
const TRACE_CLASSES = { pressure: "trace-pressure", frost: "trace-frost", substrate: "trace-substrate" };

function traceOf(series, fromMs, endMs) {
  const points = downsample(withRecord(series), fromMs, endMs);
  return { series, points, trusted: points.filter((p) => p.v !== null) };
}

function drawAxis(root, scale, side, y) {
  const x = side === "left" ? TREND_PAD.left - 4 : TREND_W - TREND_PAD.right + 4;
  for (const tick of scale.ticks) {
    if (side === "left") {
      root.appendChild(svg("line", { x1: TREND_PAD.left, x2: TREND_W - TREND_PAD.right, y1: y(tick.at), y2: y(tick.at), class: "trend-grid" }));
    }
    root.appendChild(svg("text", { x, y: y(tick.at) + 4, "text-anchor": side === "left" ? "end" : "start",
      class: `trend-tick tick-${side}` }, tick.label));
  }
}

function drawTraces(root, traces, scale, x, y) {
  for (const trace of traces) {
    const g = svg("g", { "data-trace": trace.series.id, "data-points": String(trace.trusted.length),
      "data-earliest-ms": trace.trusted.length ? String(Math.round(trace.trusted[0].t)) : "",
      class: TRACE_CLASSES[trace.series.kind.key] || "" });
    // a new segment after every gap (an untrusted value, or the feed silent for longer than STALE_AFTER_S)
    let path = "";
    let joined = false;
    for (const p of trace.points) {
      if (p.v === null) { joined = false; continue; }
      path += `${joined ? "L" : "M"}${x(p.t).toFixed(1)} ${y(scale.map(p.v)).toFixed(1)} `;
      joined = true;
    }
    g.appendChild(svg("path", { d: path.trim(), class: "trend-line" }));
    const last = trace.trusted[trace.trusted.length - 1];
    if (last) g.appendChild(svg("circle", { cx: x(last.t), cy: y(scale.map(last.v)), r: 2.5, class: "trend-last" }));
    root.appendChild(g);
  }
}

function captionOf(series, nowMs, feedStale) {
  const kind = series.kind;
  const line = document.createElement("span");
  line.className = `trend-legend ${TRACE_CLASSES[kind.key] || ""}`;
  const side = kind.log ? "left axis" : "right axis";
  const label = Object.assign(document.createElement("span"), { className: "trend-axis",
    textContent: `${kind.title}, ${kind.unit}${kind.log ? " (log scale)" : ""}` });
  label.dataset.trendAxis = series.id;
  label.title = side;
  const latest = latestText(series, nowMs, feedStale);
  const value = Object.assign(document.createElement("span"), {
    className: latest.stale ? "trend-latest stale" : "trend-latest", textContent: latest.text,
  });
  value.dataset.trendLatest = series.id;
  line.append(Object.assign(document.createElement("span"), { className: "swatch", ariaHidden: "true" }), label, " — ", value);
  if (trends.cursorMs !== null) {
    const reading = Object.assign(document.createElement("span"), { className: "trend-cursor-value", textContent: cursorText(series) });
    reading.dataset.trendCursor = series.id;
    line.append(" — ", reading);
  }
  return line;
}

function drawSpaceChart(space, list, nowMs, feedStale) {
  const endMs = trends.endMs === null ? nowMs : trends.endMs;
  const fromMs = endMs - trends.windowS * 1000;
  const traces = list.map((series) => traceOf(series, fromMs, endMs));
  const figure = document.createElement("figure");
  figure.className = "trend";
  figure.dataset.trend = space;
  const words = list.map((s) => s.kind.title).join(", ");
  const root = svg("svg", {
    viewBox: `0 0 ${TREND_W} ${TREND_H}`, role: "img", "data-from-ms": String(fromMs), "data-end-ms": String(endMs),
    "aria-label": `${space}: ${words}, ${trends.endMs === null ? "last" : "a window of"} ${spanWords(trends.windowS)}`,
  });
  const plotW = TREND_W - TREND_PAD.left - TREND_PAD.right;
  const plotH = TREND_H - TREND_PAD.top - TREND_PAD.bottom;
  root.appendChild(svg("rect", { x: TREND_PAD.left, y: TREND_PAD.top, width: plotW, height: plotH, class: "trend-plot" }));
  const startWords = trends.endMs === null ? `-${spanWords(trends.windowS)}` : new Date(fromMs).toLocaleTimeString();
  const endWords = trends.endMs === null ? "now" : new Date(endMs).toLocaleTimeString();
  root.appendChild(svg("text", { x: TREND_PAD.left, y: TREND_H - 4, class: "trend-tick" }, startWords));
  root.appendChild(svg("text", { x: TREND_W - TREND_PAD.right, y: TREND_H - 4, "text-anchor": "end", class: "trend-tick" }, endWords));
  const x = (t) => TREND_PAD.left + ((t - fromMs) / (endMs - fromMs)) * plotW;
  const yOf = (scale) => (at) => TREND_PAD.top + plotH - ((at - scale.low) / (scale.high - scale.low)) * plotH;
  let drawn = 0;
  for (const [side, group] of [["left", traces.filter((t) => t.series.kind.log)], ["right", traces.filter((t) => !t.series.kind.log)]]) {
    const values = group.flatMap((t) => t.trusted.map((p) => p.v));
    if (!values.length) continue;
    const scale = trendScale(group[0].series.kind, values);
    drawAxis(root, scale, side, yOf(scale));
    drawTraces(root, group, scale, x, yOf(scale));
    drawn += values.length;
  }
  if (!drawn) {
    root.appendChild(svg("text", { x: TREND_PAD.left + 8, y: TREND_PAD.top + plotH / 2, class: "stale-value" }, "no trusted values in this window"));
  }
  if (trends.cursorMs !== null && trends.cursorMs >= fromMs && trends.cursorMs <= endMs) {
    const cx = x(trends.cursorMs);
    root.appendChild(svg("line", { x1: cx, x2: cx, y1: TREND_PAD.top, y2: TREND_PAD.top + plotH, class: "trend-cursor" }));
  }
  const caption = document.createElement("figcaption");
  caption.append(...list.map((series) => captionOf(series, nowMs, feedStale)));
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
    group.appendChild(drawSpaceChart(space, list, nowMs, feedStale));
    return group;
  });
  if (!groups.length) groups.push(Object.assign(document.createElement("p"), { textContent: "No data yet." }));
  askRecordIfBefore(nowMs);
  if (record.note) groups.push(Object.assign(document.createElement("p"), { className: "hint", textContent: record.note }));
  document.getElementById("trends").replaceChildren(...groups);
}

// A window that starts before what the page holds is filled from the flight recorder.
function askRecordIfBefore(nowMs) {
  const all = [...trends.series.values()];
  if (!all.length) return;
  const endMs = trends.endMs === null ? nowMs : trends.endMs;
  const fromMs = endMs - trends.windowS * 1000;
  const heldFromMs = Math.min(...all.map((s) => (s.points.length ? s.points[0].t : nowMs)));
  if (fromMs >= heldFromMs - RECORD_MARGIN_MS) return;
  askRecord(all, hmi.topology, fromMs, Math.min(endMs, heldFromMs), trends.clockOffsetMs, () => { trends.dirty = true; });
}

export function setUpTrends() {
  const choice = document.getElementById("trend-window");
  choice.replaceChildren(...Object.entries(TREND_WINDOWS_S).map(([seconds, text]) =>
    Object.assign(document.createElement("option"), { value: seconds, textContent: `last ${text}` })));
  choice.value = String(trends.windowS);
  choice.addEventListener("change", () => {
    trends.windowS = Number(choice.value);
    trends.dirty = true;
  });
  setUpTrendNavigation();
  // the window slides and staleness grows even without new data: redraw at least once a second
  setInterval(() => { trends.dirty = true; }, 1000);
  setInterval(renderTrends, TREND_REDRAW_MS);
}

// Zoom, pan and the cursor: buttons, a click (or touch) on any chart puts the cursor there, and the
// keyboard on the focused charts (arrows move the cursor, + and - zoom, Escape removes the cursor).
export function setTrendCursor(ms) {
  trends.cursorMs = ms;
  trends.dirty = true;
  renderTrends();
  const label = document.getElementById("trend-cursor-time");
  label.textContent = ms === null ? "" : `cursor at ${new Date(ms).toLocaleTimeString()}`;
}

function zoom(factor) {
  const keepS = record.available ? TREND_MAX_WINDOW_S : TREND_KEEP_S;
  const endMs = trends.endMs === null ? Date.now() : trends.endMs;
  const centreMs = trends.cursorMs !== null ? trends.cursorMs : endMs - (trends.windowS * 1000) / 2;
  trends.windowS = Math.min(keepS, Math.max(TREND_MIN_WINDOW_S, trends.windowS * factor));
  if (trends.endMs !== null || trends.cursorMs !== null) {
    const newEnd = centreMs + (trends.windowS * 1000) / 2;
    trends.endMs = newEnd >= Date.now() ? null : newEnd;
  }
  trends.dirty = true;
}

function pan(fraction) {
  const endMs = trends.endMs === null ? Date.now() : trends.endMs;
  const newEnd = endMs + fraction * trends.windowS * 1000;
  const reachS = record.available ? RECORD_REACH_S : TREND_KEEP_S - trends.windowS;
  trends.endMs = newEnd >= Date.now() ? null : Math.max(newEnd, Date.now() - reachS * 1000);
  trends.dirty = true;
}

function setUpTrendNavigation() {
  const actions = {
    "trend-zoom-in": () => zoom(0.5),
    "trend-zoom-out": () => zoom(2),
    "trend-earlier": () => pan(-0.5),
    "trend-later": () => pan(0.5),
    "trend-live": () => { trends.endMs = null; trends.dirty = true; },
    "trend-cursor-clear": () => setTrendCursor(null),
  };
  for (const [id, act] of Object.entries(actions)) document.getElementById(id).addEventListener("click", act);
  const holder = document.getElementById("trends");
  holder.addEventListener("click", (event) => {
    const chart = event.target.closest("svg[data-from-ms]");
    if (!chart) return;
    const box = chart.getBoundingClientRect();
    const plotW = TREND_W - TREND_PAD.left - TREND_PAD.right;
    const along = ((event.clientX - box.left) / box.width) * TREND_W - TREND_PAD.left;
    const fromMs = Number(chart.dataset.fromMs);
    const endMs = Number(chart.dataset.endMs);
    setTrendCursor(fromMs + Math.min(Math.max(along / plotW, 0), 1) * (endMs - fromMs));
  });
  holder.addEventListener("keydown", (event) => {
    const stepMs = (trends.windowS * 1000) / CURSOR_STEPS;
    const endMs = trends.endMs === null ? Date.now() : trends.endMs;
    const cursor = trends.cursorMs !== null ? trends.cursorMs : endMs - (trends.windowS * 1000) / 2;
    if (event.key === "ArrowLeft") setTrendCursor(cursor - stepMs);
    else if (event.key === "ArrowRight") setTrendCursor(Math.min(cursor + stepMs, Date.now()));
    else if (event.key === "+") zoom(0.5);
    else if (event.key === "-") zoom(2);
    else if (event.key === "Escape") setTrendCursor(null);
    else return;
    event.preventDefault();
  });
}
