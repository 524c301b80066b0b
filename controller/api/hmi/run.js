// The run panel: start a queue, the batch's current job and phase, hold / resume / stop / abort, the
// queue, and once the batch has ended its end-of-run record (outcome, plant hours, the electrode's
// exposure verdict and certificate per job). Polled with the prompts (the feed carries no batch
// messages). Every irreversible request asks in the page itself (a confirmation group whose safe answer
// has the focus), not with window.confirm: a touch screen shows it inline and a browser test can answer
// it like any other button. Nodes are only rebuilt when what they show changes, so keyboard focus on a
// button or a certificate link survives the 2 s poll.

import { showError } from "./commands.js";
import { humanName, recipeOfJob, timeOfDay } from "./format.js";
import { api, may } from "./session.js";
import { renderBatchLine } from "./statusbar.js";

const RUN_STATE_WORDS = {
  idle: "WAITING TO START",
  starting: "STARTING",
  execute: "RUNNING",
  completing: "FINISHING",
  complete: "COMPLETE",
  holding: "HOLDING",
  held: "HELD — waiting for a person to resume, stop or abort",
  unholding: "RESUMING after a hold",
  suspending: "SUSPENDING",
  suspended: "SUSPENDED — waiting for an outside condition to clear",
  unsuspending: "RESUMING after a suspension",
  stopping: "STOPPING — making the line safe",
  stopped: "STOPPED — the batch can be resumed",
  aborting: "ABORTING — making the line safe",
  aborted: "ABORTED",
  clearing: "CLEARING",
  resetting: "RESETTING",
};
const OUTCOME_WORDS = { done: "done", rejected: "REJECTED", failed: "FAILED", aborted: "ABORTED" };
const BATCH_STATUS_WORDS = {
  running: "running",
  complete: "COMPLETE — every job done",
  failed: "ended with failures",
  stopped: "STOPPED — start the same queue to resume it",
};
const run = { view: null, queuesKey: "", jobsKey: "", queues: [] };

function runStateWords(state) {
  return RUN_STATE_WORDS[state] || state.toUpperCase();
}

function cell(text, cls) {
  return Object.assign(document.createElement("td"), { textContent: text, className: cls || "" });
}

function queueRow(job, currentId) {
  const row = document.createElement("tr");
  row.dataset.job = job.id;
  row.classList.toggle("current", job.id === currentId);
  row.appendChild(cell(String(job.position)));
  row.appendChild(cell(job.recipe));
  // a finished job's run state is where its state machine stopped (COMPLETE after a failure, too); beside
  // its outcome it would contradict it, so a finished job says "ended" and the outcome says how
  row.appendChild(cell(job.outcome ? "ended" : runStateWords(job.state)));
  const outcome = job.outcome ? OUTCOME_WORDS[job.outcome] || job.outcome : job.id === currentId ? "running" : "not finished";
  const last = cell(job.message && job.outcome !== "done" ? `${outcome}: ${job.message}` : outcome,
    job.outcome ? `outcome-${job.outcome}` : "");
  last.dataset.outcome = job.outcome || "";
  row.appendChild(last);
  row.appendChild(cell(job.plant_hours === null ? "" : job.plant_hours.toFixed(2)));
  const exposure = cell(job.exposed === null ? "not loaded yet" : job.exposure, job.exposed ? "exposed" : "");
  exposure.dataset.exposed = job.exposed === null ? "" : String(job.exposed);
  row.appendChild(exposure);
  const report = document.createElement("td");
  if (job.report) {
    report.appendChild(Object.assign(document.createElement("a"), {
      href: job.report, target: "_blank", rel: "noopener", textContent: `Certificate ${job.position}`,
    }));
  }
  row.appendChild(report);
  return row;
}

function renderQueue(view) {
  const table = document.getElementById("run-queue");
  table.hidden = !view.jobs.length;
  const ended = Boolean(view.batch) && !view.running;
  document.getElementById("run-queue-title").textContent = ended ? "End-of-run record" : "Queue";
  const currentId = view.current ? view.current.job_id : null;
  const key = JSON.stringify([view.jobs, currentId]);
  if (key === run.jobsKey) return;
  run.jobsKey = key;
  table.tBodies[0].replaceChildren(...view.jobs.map((job) => queueRow(job, currentId)));
}

function renderCurrent(current) {
  document.getElementById("run-current").hidden = !current;
  if (!current) return;
  document.getElementById("run-job").textContent =
    `${current.position} of ${current.jobs}: ${humanName(current.job_id)}`;
  document.getElementById("run-job").title = current.job_id;
  const phase = document.getElementById("run-phase");
  const shown = Math.min(current.phase_index + 1, current.phases);
  phase.textContent = `${shown} of ${current.phases}: ${current.phase_title}`;
  phase.dataset.phaseIndex = String(current.phase_index);
  const percent = Math.round(current.fraction * 100);
  const bar = document.getElementById("run-progress");
  bar.value = percent;
  bar.setAttribute("aria-valuetext", `${percent} % of the job`);
  document.getElementById("run-percent").textContent = `${percent} % of the job`;
  const state = document.getElementById("run-state");
  state.textContent = runStateWords(current.state);
  state.className = `run-state-${current.state}`;
  const note = document.getElementById("run-hold-note");
  const waiting = current.hold_requested_by && current.state !== "held";
  note.hidden = !waiting;
  if (waiting) {
    note.textContent = `Hold asked by ${current.hold_requested_by}: the run holds when "${current.phase_title}" ends ` +
      "(a step in progress is never paused halfway).";
  }
}

function renderRunActions(view) {
  const current = view.current;
  const command = may("command");
  document.getElementById("run-actions").hidden = !view.running;
  const held = Boolean(current) && current.state === "held";
  const holdAsked = Boolean(current) && Boolean(current.hold_requested_by);
  const hold = document.getElementById("hold-batch");
  const resume = document.getElementById("resume-batch");
  hold.hidden = held || holdAsked;
  resume.hidden = !(held || holdAsked);
  resume.textContent = held ? "Resume" : "Withdraw the hold";
  for (const id of ["hold-batch", "resume-batch", "abort-batch"]) {
    document.getElementById(id).disabled = !command || !current;
  }
  document.getElementById("stop-batch").disabled = !command;
}

function batchSummary(view) {
  if (!view.runs_here) return "No batch runs in this controller.";
  if (!view.batch) {
    if (view.running) return "A batch is starting…";
    return view.failure ? `The last batch failed to start: ${view.failure}` : "No batch has run yet: start one below.";
  }
  const finished = view.jobs.filter((j) => j.outcome).length;
  const status = view.running ? "running" : BATCH_STATUS_WORDS[view.batch.status] || view.batch.status;
  let text = `${humanName(view.batch.id)} (${view.batch.name}), started by ${view.batch.user}: ${status}; ` +
    `${finished} of ${view.jobs.length} jobs finished`;
  if (view.running && !view.current) text += " — no job running now";
  if (!view.running && view.batch.ended_at) text += `; ended ${timeOfDay(view.batch.ended_at)}`;
  if (view.failure) text += `. ${view.failure}`;
  return text;
}

// The batch in one line for the status bar: which batch, its job and phase, the run state in words.
function batchLine(view) {
  if (!view.runs_here) return "Batch: none in this controller";
  if (!view.batch) return view.running ? "Batch: starting…" : "Batch: none running";
  if (!view.running) return `${humanName(view.batch.id)}: ${BATCH_STATUS_WORDS[view.batch.status] || view.batch.status}`;
  const current = view.current;
  if (!current) return `${humanName(view.batch.id)}: running, no job now`;
  const shown = Math.min(current.phase_index + 1, current.phases);
  return `${humanName(view.batch.id)}: ${runStateWords(current.state)} — job ${current.position} of ${current.jobs}, ` +
    `phase ${shown} of ${current.phases}: ${current.phase_title}`;
}

function renderBatch(view) {
  run.view = view;
  for (const job of view.jobs) recipeOfJob.set(job.id, job.recipe);
  const fullId = view.batch ? view.batch.id : "";
  document.getElementById("run-batch").title = fullId;
  document.getElementById("status-batch").title = fullId;
  document.getElementById("run-batch").textContent = batchSummary(view);
  renderBatchLine(batchLine(view), view.running ? (view.current ? view.current.state : "starting") : "none");
  document.getElementById("run-start").hidden = !view.runs_here || view.running;
  document.getElementById("start-batch").disabled = !may("command") || !run.queues.length;
  renderRunActions(view);
  renderCurrent(view.current);
  renderQueue(view);
  const report = document.getElementById("run-report");
  report.hidden = !view.batch || view.running;
  if (view.batch) document.getElementById("run-report-link").href = `/api/reports/${view.batch.id}.html`;
  if (view.runs_here && !view.running) refreshQueues();
}

export async function refreshBatch() {
  try {
    renderBatch(await api("/api/batch"));
  } catch (error) {
    document.getElementById("run-batch").textContent = `Batch status unavailable: ${error.message}`;
    renderBatchLine(`Batch: status unavailable (${error.message})`, "unknown");
  }
}

async function refreshQueues() {
  let queues;
  try {
    queues = await api("/api/batch/queues");
  } catch (error) {
    document.getElementById("start-error").textContent = `Queues unavailable: ${error.message}`;
    return;
  }
  const key = JSON.stringify(queues);
  if (key === run.queuesKey) return;
  run.queuesKey = key;
  run.queues = queues;
  const select = document.getElementById("queue-select");
  const chosen = select.value;
  select.replaceChildren(...queues.map((q) => Object.assign(document.createElement("option"), {
    value: q.name, textContent: `${q.name} — ${q.jobs} job${q.jobs === 1 ? "" : "s"}: ${q.recipes.join(", ")}`,
  })));
  if (queues.some((q) => q.name === chosen)) select.value = chosen;
  document.getElementById("start-batch").disabled = !may("command") || !queues.length;
}

function confirmGroup(name, show, focusId) {
  document.getElementById(`${name}-confirm`).hidden = !show;
  document.getElementById(focusId).focus(); // the safe answer has the focus
}

function askStart(event) {
  event.preventDefault();
  const queue = run.queues.find((q) => q.name === document.getElementById("queue-select").value);
  if (!queue) return;
  document.getElementById("start-error").textContent = "";
  document.getElementById("start-question").textContent = `Start queue ${queue.name} (${queue.jobs} ` +
    `job${queue.jobs === 1 ? "" : "s"}: ${queue.recipes.join(", ")})? If it was stopped before, it resumes ` +
    "where it stopped.";
  confirmGroup("start", true, "start-no");
}

async function startBatch() {
  const queue = document.getElementById("queue-select").value;
  confirmGroup("start", false, "start-batch");
  try {
    const batch = await api("/api/batch/start", { method: "POST", body: JSON.stringify({ queue }) });
    const box = document.getElementById("command-result");
    box.className = "result done";
    box.textContent = `${humanName(batch.id)} (${batch.name}) started by ${batch.user}.`;
  } catch (error) {
    document.getElementById("start-error").textContent = `Start refused: ${error.message}`;
  }
  await refreshBatch();
}

async function steerBatch(request, words) {
  try {
    const answer = await api(`/api/batch/${request}`, { method: "POST" });
    const box = document.getElementById("command-result");
    box.className = "result done";
    box.textContent = `${words} (asked by ${answer.user}${answer.job ? `, job ${answer.job}` : ""}).`;
  } catch (error) {
    showError(`${request}: ${error.message}`);
  }
  await refreshBatch();
}

export function setUpRunPanel() {
  document.getElementById("run-start").addEventListener("submit", askStart);
  document.getElementById("start-no").addEventListener("click", () => confirmGroup("start", false, "start-batch"));
  document.getElementById("start-yes").addEventListener("click", startBatch);
  document.getElementById("hold-batch").addEventListener("click",
    () => steerBatch("hold", "Hold requested: the run holds at the end of the current phase"));
  document.getElementById("resume-batch").addEventListener("click",
    () => steerBatch("resume", "Resume requested"));
  for (const [name, request, words] of [
    ["stop", "stop", "Stop requested: the running job goes to its safe state; the batch can be resumed"],
    ["abort", "abort", "Abort requested: the running step is cut short and the line made safe"],
  ]) {
    document.getElementById(`${name}-batch`).addEventListener("click", () => confirmGroup(name, true, `${name}-no`));
    document.getElementById(`${name}-no`).addEventListener("click", () => confirmGroup(name, false, `${name}-batch`));
    document.getElementById(`${name}-yes`).addEventListener("click", () => {
      confirmGroup(name, false, `${name}-batch`);
      steerBatch(request, words);
    });
    document.getElementById(`${name}-confirm`).addEventListener("keydown", (event) => {
      if (event.key === "Escape") confirmGroup(name, false, `${name}-batch`);
    });
  }
  document.getElementById("start-confirm").addEventListener("keydown", (event) => {
    if (event.key === "Escape") confirmGroup("start", false, "start-batch");
  });
}
