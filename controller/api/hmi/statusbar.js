// The status bar under the title, always on screen: the line's unit mode (who acts on the actuators now,
// since when, changed by whom and why) and the batch's state in one line. The mode is re-read with the
// command availability (`refreshMode`, on state messages, at most every MODE_MS) and after a log-in; the
// batch line is written by the run panel whenever it reads the batch.

import { humanName, humanText, timeOfDay } from "./format.js";

const MODE_MS = 1000;
const MODE_WORDS = {
  production: "PRODUCTION",
  manual: "MANUAL",
  maintenance: "MAINTENANCE",
};
const MODE_MEANING = {
  production: "the batch owns the actuators; manual commands are refused",
  manual: "operators command through the gate",
  maintenance: "engineers only; devices may be out of service",
};
let asked = 0;

export function renderMode(mode) {
  const holder = document.getElementById("status-mode");
  holder.dataset.mode = mode.mode;
  const owner = mode.owner ? ` (${humanName(mode.owner)})` : "";
  holder.title = mode.owner || "";
  const out = mode.out_of_service.length ? `; out of service: ${mode.out_of_service.join(", ")}` : "";
  holder.querySelector(".mode-word").textContent = `${MODE_WORDS[mode.mode] || mode.mode}${owner}`;
  holder.querySelector(".mode-why").textContent = `${MODE_MEANING[mode.mode] || ""}${out} — since ` +
    `${timeOfDay(mode.since)}, ${mode.user}: ${humanText(mode.reason)}`;
}

export async function refreshMode(force) {
  if (!force && Date.now() - asked < MODE_MS) return;
  asked = Date.now();
  try {
    const response = await fetch("/api/mode");
    if (response.ok) renderMode(await response.json());
  } catch {
    // the next state message asks again; the bar keeps the last mode, and the feed status says why
  }
}

export function renderBatchLine(text, state) {
  const node = document.getElementById("status-batch");
  node.textContent = text;
  node.dataset.state = state;
}

// Items left in the line with no batch to look after them (a target in the chamber after the last job):
// said on the status bar for as long as it is so, since their ledger keeps running and nobody's plan
// covers them.
export function renderUnowned(items) {
  const node = document.getElementById("status-unowned");
  const list = items || [];
  node.hidden = list.length === 0;
  node.textContent = list.length ? `Items in the line, no batch owns them: ${list.map(humanName).join(", ")}` : "";
}
