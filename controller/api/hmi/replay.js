// Replay: the HMI on recorded data (`depline replay`), started by hmi.js instead of the live feed when the
// page is marked data-mode="replay". Nothing here commands: the server refuses every command and log-in
// (405, "replay is read-only"), and every command button on the page is disabled with that reason.
// A range (a job from GET /api/history, or any from/to) is chosen; a time cursor (slider, step buttons,
// the arrow keys, a click on an event) moves through it; at each instant the process picture is redrawn
// from GET /api/replay/state (the live state's shape, so picture.js draws it unchanged), the alarm table
// and the mode from GET /api/replay/board, the timeline beside it (GET /api/timeline) marks and scrolls to
// the last event at or before the cursor, and the trends (GET /api/samples over the range) read out there.
// A symbol's faceplate shows its readings and alarms at the instant (no commands: there is nothing to ask).
// The page's address keeps the choice (#run=JOB&at=EPOCH, or #from=…&to=…&at=…) so a link opens an instant.

import { renderAlarms } from "./alarms.js";
import { element } from "./dom.js";
import { eventText, utc } from "./events.js";
import { setUpItems } from "./exposure.js";
import { setUpFaceplates } from "./faceplate.js";
import { hmi } from "./live.js";
import { renderPicture } from "./picture.js";
import { renderMode, renderUnowned } from "./statusbar.js";
import { setTrendCursor, setUpTrends, TREND_KINDS, trends } from "./trends.js";

const SLIDER_STEPS = 1000; // the slider's resolution over the range; an arrow key moves one step
const BIG_STEP = 20; // the ◀◀ / ▶▶ buttons and Shift+arrow
const FETCH_DELAY_MS = 80; // a dragged slider asks for the last position only

const replay = {
  info: null, fromS: 0, toS: 0, atS: 0, run: null, entries: [], asked: 0, timer: null,
};

function stepS() {
  return Math.max((replay.toS - replay.fromS) / SLIDER_STEPS, 0.001);
}

// Every command, log-in and alarm action is refused by the server; the page says so on each button.
function disableCommands(reason) {
  const scopes = ["#session", "#run-panel", "#controls", "#operations-panel", "#alarms", "#shelve-form",
    "#faceplate-commands", "#prompt-panel"];
  for (const scope of scopes) {
    for (const node of document.querySelectorAll(`${scope} button, ${scope} input, ${scope} select`)) {
      node.disabled = true;
      node.title = reason;
    }
  }
  const hint = document.getElementById("controls-hint");
  hint.textContent = reason;
  document.getElementById("login-error").textContent = reason;
  document.getElementById("operations-hint").textContent = reason;
}

function buildPanel() {
  const panel = element("section", { id: "replay-panel", class: "replay-panel", "aria-labelledby": "replay-title" });
  panel.append(element("h2", { id: "replay-title" }, "Replay"));
  const choose = element("p", { class: "replay-choose" });
  const jobs = element("select", { id: "replay-job", "aria-label": "Job to replay" });
  const from = element("input", { id: "replay-from", "aria-label": "From (ISO 8601 or epoch s)", size: "22" });
  const to = element("input", { id: "replay-to", "aria-label": "To (ISO 8601 or epoch s)", size: "22" });
  const show = element("button", { type: "button", id: "replay-show" }, "Show range");
  choose.append(element("label", { for: "replay-job" }, "Job "), jobs, " or from ", from, " to ", to, " ", show);
  const cursor = element("p", { class: "replay-cursor" });
  const slider = element("input", { type: "range", id: "replay-cursor", min: "0", max: String(SLIDER_STEPS),
    step: "1", value: "0", "aria-label": "Replay cursor: arrows step, Shift+arrows step further" });
  const buttons = [
    ["replay-event-back", "|◀", "Previous event"], ["replay-back-far", "◀◀", "Back further"],
    ["replay-back", "◀", "Back one step"], ["replay-forward", "▶", "Forward one step"],
    ["replay-forward-far", "▶▶", "Forward further"], ["replay-event-next", "▶|", "Next event"],
  ].map(([id, text, label]) => element("button", { type: "button", id, "aria-label": label, title: label }, text));
  const label = element("span", { id: "replay-at", class: "replay-at", role: "status" });
  cursor.append(...buttons.slice(0, 3), slider, ...buttons.slice(3), " ", label);
  const list = element("ol", { id: "replay-timeline", class: "replay-timeline", "aria-label": "Timeline of the range" });
  panel.append(choose, cursor, element("h3", {}, "Timeline"), list);
  return panel;
}

function setBanner() {
  const banner = document.getElementById("replay-banner");
  const at = replay.info && replay.fromS ? ` — ${utc(replay.atS)}` : "";
  banner.textContent = `REPLAY — ${replay.info ? replay.info.database : "…"}${at} — read-only`;
}

function writeHash() {
  const range = replay.run ? `run=${encodeURIComponent(replay.run)}` : `from=${replay.fromS}&to=${replay.toS}`;
  history.replaceState(null, "", `#${range}&at=${replay.atS.toFixed(3)}`);
}

export function moveCursor(atS) {
  replay.atS = Math.min(Math.max(atS, replay.fromS), replay.toS);
  const slider = document.getElementById("replay-cursor");
  slider.value = String(Math.round((replay.atS - replay.fromS) / stepS()));
  document.getElementById("replay-at").textContent = `${utc(replay.atS)}`;
  document.getElementById("replay-at").dataset.at = String(replay.atS);
  setBanner();
  markTimeline();
  setTrendCursor(replay.atS * 1000);
  writeHash();
  clearTimeout(replay.timer);
  replay.timer = setTimeout(drawAt, FETCH_DELAY_MS);
}

async function drawAt() {
  const at = replay.atS;
  const asked = ++replay.asked;
  try {
    const [state, board] = await Promise.all([
      fetch(`/api/replay/state?at=${at}`).then((r) => (r.ok ? r.json() : Promise.reject(r.status))),
      fetch(`/api/replay/board?at=${at}`).then((r) => (r.ok ? r.json() : Promise.reject(r.status))),
    ]);
    if (asked !== replay.asked) return; // the cursor moved on meanwhile
    hmi.state = state;
    hmi.stateReceivedMs = Date.now();
    renderPicture();
    renderUnowned(state.unowned_items);
    renderBoard(board);
    const age = document.getElementById("state-age");
    age.textContent = `at ${utc(at)} (recorded)`;
    age.classList.remove("stale");
    document.getElementById("synoptic").dataset.at = String(at);
    document.getElementById("feed-status").textContent = `replay: the line at ${utc(at)}`;
  } catch (error) {
    document.getElementById("feed-status").textContent = `replay: the records could not be read (${error})`;
  }
}

// The board's alarms in the live alarm table's shape (the definitions' texts are not recorded: the
// alarm's id and its occurrence's sentence stand for them).
function renderBoard(board) {
  const active = board.alarms.map((a) => ({
    id: a.id, severity: a.severity, state: a.state, text: a.id, detail: a.text, guidance: "",
    condition_active: a.state.startsWith("active"), unacknowledged: a.unacknowledged,
    raised_at_s: a.since_ts, acked_by: a.state === "active_acked" ? a.user : null, first_out: a.first_out,
    evidence: a.evidence,
  }));
  renderAlarms({ active: active.filter((a) => a.state !== "shelved"), shelved: active.filter((a) => a.state === "shelved"),
    unacknowledged: active.some((a) => a.unacknowledged) });
  if (board.mode) renderMode(board.mode);
}

function markTimeline() {
  const list = document.getElementById("replay-timeline");
  let current = null;
  for (const row of list.children) {
    row.classList.remove("at-cursor");
    row.removeAttribute("aria-current");
    if (Number(row.dataset.ts) <= replay.atS + 1e-6) current = row;
  }
  if (current) {
    current.classList.add("at-cursor");
    current.setAttribute("aria-current", "true");
    current.scrollIntoView({ block: "nearest" });
  }
}

function renderTimeline() {
  const list = document.getElementById("replay-timeline");
  list.replaceChildren(...replay.entries.map((entry) => {
    const row = element("li", { "data-ts": String(entry.ts), "data-source": entry.source });
    const go = element("button", { type: "button", class: "replay-event" }, eventText(entry));
    go.addEventListener("click", () => moveCursor(entry.ts));
    row.append(go);
    return row;
  }));
  if (!replay.entries.length) list.append(element("li", {}, "No recorded event in this range."));
}

// The trends over the range from the recorded samples of each space: its first gauge (pressure), its
// frost point and its substrate temperature, drawn by trends.js with its cursor at the replay's.
async function loadTrends() {
  trends.series.clear();
  const topology = hmi.topology || (await fetch("/api/topology").then((r) => r.json()));
  hmi.topology = topology;
  const from = replay.fromS;
  const to = replay.toS;
  for (const space of topology.spaces) {
    const response = await fetch(`/api/samples?from=${from}&to=${to}&space=${encodeURIComponent(space.name)}&format=jsonl`);
    if (!response.ok) continue;
    const rows = (await response.text()).split("\n").filter(Boolean).map((line) => JSON.parse(line));
    const gauge = space.gauges[0];
    const pick = {
      pressure: (r) => gauge && r.device === gauge.device && r.channel === gauge.channel,
      frost: (r) => r.channel === "frost_point_atm",
      substrate: (r) => r.channel === "temperature" && r.unit === "°C",
    };
    for (const kind of TREND_KINDS) {
      const points = rows.filter(pick[kind.key]).map((r) => ({
        t: r.ts * 1000, h: true,
        v: r.value === null || r.quality !== "ok" || (kind.log && r.value <= 0) ? null : r.value,
      }));
      if (points.length) trends.series.set(`${space.name}:${kind.key}`, { id: `${space.name}:${kind.key}`, space: space.name, kind, points });
    }
  }
  trends.historySampleMs = (to - from) * 1000; // recorded points: held until the next, never "feed silent"
  trends.endMs = to * 1000;
  trends.windowS = Math.max(to - from, 1);
  trends.dirty = true;
}

async function showRange(fromS, toS, run, atS) {
  replay.fromS = fromS;
  replay.toS = Math.max(toS, fromS + 0.001);
  replay.run = run;
  const query = run ? `run=${encodeURIComponent(run)}` : `from=${fromS}&to=${toS}`;
  try {
    const response = await fetch(`/api/timeline?${query}`);
    replay.entries = response.ok ? (await response.json()).entries : [];
  } catch {
    replay.entries = [];
  }
  renderTimeline();
  document.getElementById("replay-from").value = String(replay.fromS);
  document.getElementById("replay-to").value = String(replay.toS);
  moveCursor(atS === undefined ? replay.fromS : atS);
  await loadTrends();
  setTrendCursor(replay.atS * 1000);
}

function eventStep(direction) {
  const times = replay.entries.map((e) => e.ts);
  const next = direction > 0 ? times.find((t) => t > replay.atS + 1e-6)
    : [...times].reverse().find((t) => t < replay.atS - 1e-6);
  if (next !== undefined) moveCursor(next);
}

function wire(jobs) {
  const slider = document.getElementById("replay-cursor");
  slider.addEventListener("input", () => moveCursor(replay.fromS + Number(slider.value) * stepS()));
  slider.addEventListener("keydown", (event) => {
    if (!event.shiftKey || !["ArrowLeft", "ArrowRight"].includes(event.key)) return;
    event.preventDefault(); // Shift+arrow: a big step
    moveCursor(replay.atS + (event.key === "ArrowRight" ? BIG_STEP : -BIG_STEP) * stepS());
  });
  const steps = {
    "replay-back": -1, "replay-forward": 1, "replay-back-far": -BIG_STEP, "replay-forward-far": BIG_STEP,
  };
  for (const [id, n] of Object.entries(steps)) {
    document.getElementById(id).addEventListener("click", () => moveCursor(replay.atS + n * stepS()));
  }
  document.getElementById("replay-event-back").addEventListener("click", () => eventStep(-1));
  document.getElementById("replay-event-next").addEventListener("click", () => eventStep(1));
  const choice = document.getElementById("replay-job");
  choice.addEventListener("change", () => {
    const job = jobs.find((j) => j.id === choice.value);
    if (job) showRange(job.started_at, job.ended_at || replay.info.last_ts || job.started_at, job.id);
  });
  document.getElementById("replay-show").addEventListener("click", () => {
    const from = Date.parse(document.getElementById("replay-from").value) / 1000 || Number(document.getElementById("replay-from").value);
    const to = Date.parse(document.getElementById("replay-to").value) / 1000 || Number(document.getElementById("replay-to").value);
    if (Number.isFinite(from) && Number.isFinite(to) && to > from) showRange(from, to, null);
  });
}

async function listJobs() {
  const response = await fetch("/api/history?limit=200");
  const batches = response.ok ? await response.json() : [];
  const jobs = batches.flatMap((b) => b.jobs).filter((j) => j.started_at !== null);
  const choice = document.getElementById("replay-job");
  choice.replaceChildren(element("option", { value: "" }, "— choose a job —"), ...jobs.map((j) =>
    element("option", { value: j.id }, `${j.id} ${j.recipe} ${j.outcome || j.state} ${utc(j.started_at)}`)));
  return jobs;
}

export async function startReplay() {
  const style = element("link", { rel: "stylesheet", href: "/hmi/replay.css" });
  document.head.append(style);
  const banner = element("section", { id: "replay-banner", class: "replay-banner", role: "status",
    "data-testid": "replay-banner" }, "REPLAY");
  document.querySelector(".topbar").after(banner);
  document.querySelector(".column-side").prepend(buildPanel());
  document.getElementById("events").closest("section").hidden = true; // the replay's timeline is the events
  setUpTrends();
  setUpFaceplates(); // readings and alarms at the instant; no commands (a replay has no availability)
  setUpItems(); // an item's exposure record over the whole of the records
  replay.info = await fetch("/api/replay").then((r) => r.json());
  disableCommands(replay.info.read_only);
  document.getElementById("feed-status").textContent = "replay: choose a job or a range";
  document.getElementById("status-batch").textContent = "Batch: recorded — its events are in the replay's timeline";
  setBanner();
  const jobs = await listJobs();
  wire(jobs);
  const wanted = new URLSearchParams(location.hash.slice(1));
  const at = wanted.has("at") ? Number(wanted.get("at")) : undefined;
  const job = wanted.has("run") ? jobs.find((j) => j.id === wanted.get("run")) : jobs[0];
  if (wanted.has("from") && wanted.has("to")) {
    await showRange(Number(wanted.get("from")), Number(wanted.get("to")), null, at);
  } else if (job) {
    document.getElementById("replay-job").value = job.id;
    await showRange(job.started_at, job.ended_at || replay.info.last_ts || job.started_at, job.id, at);
  } else if (replay.info.first_ts !== null) {
    await showRange(replay.info.first_ts, replay.info.last_ts, null, at);
  }
}
