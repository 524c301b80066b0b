// Manual antechamber operations: one button each for Cycle (pump/purge), Fill with gas and Pump down,
// run by the controller in the background in the logged-in person's name (GET /api/operations every
// POLL_MS). The fieldsets are built once per set of spaces and permission, then only their texts and
// states change, so a poll never steals keyboard focus.
// Results are words ("done", "FAILED", "REFUSED"); colour only repeats them.

import { button } from "./dom.js";
import { timeOfDay } from "./format.js";
import { POLL_MS } from "./live.js";
import { api, may } from "./session.js";

const OPERATION_WORDS = { cycle: "Cycle", fill: "Fill with gas", pump_down: "Pump down" };
const operations = { view: null, key: "", may: null };

function opNode(space, part) {
  return document.querySelector(`[data-op-space="${space}"] [data-op-part="${part}"]`);
}

function operationFieldset(space, view) {
  const set = document.createElement("fieldset");
  set.dataset.opSpace = space;
  set.appendChild(Object.assign(document.createElement("legend"), { textContent: `Antechamber ${space}` }));
  const row = document.createElement("p");
  row.className = "op-buttons";
  const cyclesId = `op-cycles-${space}`;
  const label = Object.assign(document.createElement("label"), { htmlFor: cyclesId, textContent: "Cycles" });
  const cycles = Object.assign(document.createElement("input"), {
    id: cyclesId, type: "number", min: "1", max: String(view.max_cycles), step: "1",
    value: String(view.default_cycles || 3),
  });
  cycles.dataset.opPart = "cycles";
  const cycle = button(`Cycle ×${cycles.value}`, () => startOperation(space, "cycle"),
    { "data-op-part": "start-cycle", "data-operation": `${space}:cycle` });
  cycles.addEventListener("input", () => { cycle.textContent = `Cycle ×${cycles.value}`; });
  row.append(label, cycles, cycle,
    button("Fill with gas", () => startOperation(space, "fill"),
      { "data-op-part": "start-fill", "data-operation": `${space}:fill` }),
    button("Pump down", () => startOperation(space, "pump_down"),
      { "data-op-part": "start-pump_down", "data-operation": `${space}:pump_down` }),
    button("Cancel…", () => askCancel(space, true),
      { "data-op-part": "cancel", "data-operation": `${space}:cancel`, "aria-controls": `op-confirm-${space}` }));
  const confirm = document.createElement("div");
  Object.assign(confirm, { id: `op-confirm-${space}`, className: "confirm", hidden: true });
  confirm.dataset.opPart = "confirm";
  confirm.setAttribute("role", "group");
  confirm.setAttribute("aria-labelledby", `op-question-${space}`);
  confirm.append(
    Object.assign(document.createElement("p"), {
      id: `op-question-${space}`,
      textContent: `Cancel the operation on ${space}? Its valves close and it stays as it is now.`,
    }),
    button(`Yes, cancel ${space}`, () => cancelOperation(space), { "data-op-part": "cancel-yes" }),
    button("No, keep running", () => askCancel(space, false), { "data-op-part": "cancel-no" }));
  confirm.addEventListener("keydown", (event) => { if (event.key === "Escape") askCancel(space, false); });
  const status = Object.assign(document.createElement("p"), { id: `op-step-${space}`, className: "op-step" });
  status.dataset.opPart = "step";
  status.setAttribute("role", "status");
  const bar = Object.assign(document.createElement("progress"), { max: 100, value: 0, hidden: true });
  bar.dataset.opPart = "progress";
  bar.setAttribute("aria-labelledby", status.id);
  const last = Object.assign(document.createElement("p"), { className: "op-last" });
  last.dataset.opPart = "last";
  last.setAttribute("role", "status");
  const refusal = Object.assign(document.createElement("p"), { className: "form-error" });
  refusal.dataset.opPart = "refusal";
  refusal.setAttribute("role", "alert");
  set.append(row, confirm, status, bar, last, refusal);
  return set;
}

function renderOperations() {
  const view = operations.view;
  const holder = document.getElementById("operations");
  const hint = document.getElementById("operations-hint");
  if (!view || !holder) return;
  const allowed = may("command");
  operations.may = allowed;
  if (!view.runs_here) hint.textContent = "This controller offers no manual operations.";
  else hint.textContent = allowed ? "" : "Log in with command permission to operate the antechambers.";
  hint.hidden = hint.textContent === "";
  const key = JSON.stringify([view.runs_here, view.spaces, view.max_cycles]);
  if (key !== operations.key) { // rebuilt only when the spaces change: a poll must not steal focus
    operations.key = key;
    holder.replaceChildren(...view.spaces.map((space) => operationFieldset(space, view)));
  }
  for (const space of view.spaces) renderSpace(space, view.operations, allowed);
}

function renderSpace(space, all, allowed) {
  const running = all.find((op) => op.space === space && op.state === "running");
  const last = all.find((op) => op.space === space && op.state !== "running");
  for (const kind of Object.keys(OPERATION_WORDS)) opNode(space, `start-${kind}`).disabled = !allowed || Boolean(running);
  opNode(space, "cycles").disabled = !allowed || Boolean(running);
  const cancel = opNode(space, "cancel");
  cancel.hidden = !running;
  cancel.disabled = !allowed;
  if (!running || !allowed) opNode(space, "confirm").hidden = true;
  const step = opNode(space, "step");
  const bar = opNode(space, "progress");
  bar.hidden = !running;
  if (running) {
    const percent = Math.round(running.fraction * 100);
    step.textContent = `Running: ${operationTitle(running)} by ${running.user} — ${running.step} (${percent} %)`;
    bar.value = percent;
  } else {
    step.textContent = "Idle.";
  }
  opNode(space, "last").textContent = last ? lastResult(last) : "";
  opNode(space, "last").className = last ? `op-last op-${last.state}` : "op-last";
}

function operationTitle(op) {
  return op.kind === "cycle" ? `Cycle ×${op.cycles}` : OPERATION_WORDS[op.kind] || op.kind;
}

function lastResult(op) {
  const words = { done: "done", failed: "FAILED", cancelled: "CANCELLED" };
  const when = timeOfDay(op.ended_at);
  const why = op.message ? `: ${op.message}` : "";
  return `Last: ${operationTitle(op)} by ${op.user} ${words[op.state] || op.state} at ${when}${why}`;
}

async function startOperation(space, kind) {
  const refusal = opNode(space, "refusal");
  refusal.textContent = "";
  const body = { kind };
  if (kind === "cycle") body.cycles = Number(opNode(space, "cycles").value);
  try {
    await api(`/api/spaces/${encodeURIComponent(space)}/operations`, { method: "POST", body: JSON.stringify(body) });
  } catch (error) {
    refusal.textContent = `REFUSED: ${error.message}`;
  }
  await refreshOperations();
}

function askCancel(space, show) {
  opNode(space, "confirm").hidden = !show;
  opNode(space, show ? "cancel-no" : "cancel").focus(); // the safe answer has the focus
}

async function cancelOperation(space) {
  opNode(space, "confirm").hidden = true;
  const refusal = opNode(space, "refusal");
  refusal.textContent = "";
  try {
    await api(`/api/spaces/${encodeURIComponent(space)}/operations/cancel`, { method: "POST" });
  } catch (error) {
    refusal.textContent = `Cancel REFUSED: ${error.message}`;
  }
  await refreshOperations();
  opNode(space, "start-cycle").focus();
}

async function refreshOperations() {
  try {
    operations.view = await api("/api/operations");
  } catch (error) {
    const hint = document.getElementById("operations-hint");
    hint.hidden = false;
    hint.textContent = `Operations status unavailable: ${error.message}`;
    return;
  }
  renderOperations();
}

function startOperations() {
  refreshOperations();
  setInterval(refreshOperations, POLL_MS);
  // a log-in or log-out changes what the buttons may do at once, without waiting for the next poll
  setInterval(() => { if (operations.view && operations.may !== may("command")) renderOperations(); }, 250);
}

document.addEventListener("DOMContentLoaded", startOperations);
