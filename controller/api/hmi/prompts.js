// The operator prompts: glove work the running sequence waits for, each confirmed by a person with command
// permission. They sit in a panel under the alarm banner that never scrolls away and grows loud while the
// line waits; each says what to do in the sequence's words and which job asks, by its short name ("job
// J01, step load") rather than the batch's long id. Polled every POLL_MS (the feed carries no prompt
// messages); the list is only rebuilt when the prompts or the permission change, so a poll never steals
// keyboard focus.

import { showError } from "./commands.js";
import { button } from "./dom.js";
import { humanName, humanText, timeOfDay } from "./format.js";
import { refreshBatch } from "./run.js";
import { api, may } from "./session.js";

// "B20261206T183028Z-24c1-J01:load" -> "job J01 thin cell, step load" (the full key stays in the title)
export function promptOrigin(key) {
  const [job, ...step] = key.split(":");
  return `job ${humanName(job)}, step ${step.join(":").replaceAll("_", " ").replaceAll("-", " ")}`;
}

function setWaiting(waiting) {
  const panel = document.getElementById("prompt-panel");
  panel.classList.toggle("waiting", waiting);
  document.getElementById("prompts-title").textContent = waiting ? "The line is waiting for you" : "Operator prompts";
}

export async function refreshPrompts() {
  const list = document.getElementById("prompts");
  let prompts;
  try {
    prompts = await api("/api/prompts");
  } catch (error) {
    list.replaceChildren(Object.assign(document.createElement("li"), { textContent: `Prompts unavailable: ${error.message}` }));
    return;
  }
  setWaiting(prompts.length > 0);
  if (!prompts.length) {
    list.replaceChildren(Object.assign(document.createElement("li"), { textContent: "No glove work asked for." }));
    return;
  }
  const shown = [...list.querySelectorAll("li[data-prompt]")].map((li) => li.dataset.prompt).join("|");
  if (shown === prompts.map((p) => p.key).join("|") && list.dataset.may === String(may("command"))) return;
  list.dataset.may = String(may("command"));
  list.replaceChildren(...prompts.map((prompt) => {
    const li = document.createElement("li");
    li.dataset.prompt = prompt.key;
    li.title = prompt.key;
    // the job's items are named "<job id>-box-in": said by their role in the recipe ("put the closed
    // container “inlet container of J01” into inlet"), the full ids in the title
    li.title = `${prompt.key}: ${prompt.prompt}`;
    li.appendChild(document.createTextNode(humanText(prompt.prompt)));
    li.appendChild(Object.assign(document.createElement("span"), { className: "prompt-job",
      textContent: `${promptOrigin(prompt.key)}, asked ${timeOfDay(prompt.asked_at)}` }));
    const confirm = button("Confirm done", () => confirmPrompt(prompt.key), { "aria-label": `Confirm: ${prompt.prompt}` });
    confirm.disabled = !may("command");
    li.appendChild(confirm);
    return li;
  }));
}

async function confirmPrompt(key) {
  try {
    await api(`/api/prompts/${encodeURIComponent(key)}/confirm`, { method: "POST" });
  } catch (error) {
    showError(`Confirm: ${error.message}`);
  }
  await Promise.all([refreshPrompts(), refreshBatch()]);
}
