// The alarm banner and table (acknowledge, shelve) and the shelved alarms (unshelve), re-read on every
// "alarm" message of the feed and every POLL_MS. The buttons a person sees follow their permissions.

import { showError } from "./commands.js";
import { button } from "./dom.js";
import { humanText, timeOfDay } from "./format.js";
import { hmi } from "./live.js";
import { api, may } from "./session.js";

export function renderAlarms(alarms) {
  hmi.alarms = alarms; // the process picture draws a door whose position alarm is up as disagreeing
  const banner = document.getElementById("alarm-banner");
  const active = alarms.active;
  const unacked = active.filter((a) => a.unacknowledged).length;
  if (!active.length) {
    banner.className = "banner banner-none";
    banner.textContent = alarms.shelved.length ? `No active alarms (${alarms.shelved.length} shelved)` : "No active alarms";
  } else {
    banner.className = `banner ${unacked ? "banner-unacked" : "banner-alarm"}`;
    // the first-out alarm of a cascade leads (when the board marks one), else the newest/worst first
    const first = active.find((a) => a.first_out);
    const top = first || active[0];
    const lead = first ? "FIRST OUT " : "";
    banner.textContent = `ALARM: ${active.length} active, ${unacked} unacknowledged — ` +
      humanText(`${lead}${top.severity.toUpperCase()}: ${top.text}${top.detail ? ` (${top.detail})` : ""}`);
    banner.dataset.firstOut = first ? first.id : "";
  }
  const body = document.querySelector("#alarms tbody");
  if (!active.length) {
    const row = document.createElement("tr");
    row.appendChild(Object.assign(document.createElement("td"), { colSpan: 5, textContent: "No active alarms." }));
    body.replaceChildren(row);
    return;
  }
  body.replaceChildren(...active.map((alarm) => {
    const row = document.createElement("tr");
    row.dataset.alarm = alarm.id;
    const cell = (text, cls) => Object.assign(document.createElement("td"), { textContent: text, className: cls || "" });
    row.appendChild(cell(alarm.severity.toUpperCase() + (alarm.first_out ? " — FIRST OUT" : ""), `sev-${alarm.severity}`));
    const gone = alarm.condition_active || alarm.state.startsWith("cleared") ? "" : " (condition gone)";
    row.appendChild(cell(alarm.state.replaceAll("_", " ") + gone));
    row.appendChild(cell(timeOfDay(alarm.raised_at_s)));
    const text = cell("");
    text.appendChild(Object.assign(document.createElement("div"), { textContent: humanText(alarm.text), title: alarm.text }));
    if (alarm.detail) text.appendChild(Object.assign(document.createElement("div"), { textContent: humanText(alarm.detail), title: alarm.detail }));
    text.appendChild(Object.assign(document.createElement("div"), { textContent: alarm.guidance, className: "guidance" }));
    row.appendChild(text);
    const action = cell(alarm.acked_by ? `acknowledged by ${alarm.acked_by}` : "");
    if (alarm.unacknowledged && may("alarm.acknowledge")) {
      action.appendChild(button(`Acknowledge ${alarm.id}`, () => acknowledge(alarm.id), { "data-ack": alarm.id }));
    }
    if (may("alarm.shelve")) {
      action.appendChild(button(`Shelve ${alarm.id}`, () => askShelve(alarm.id), { "data-shelve": alarm.id }));
    }
    row.appendChild(action);
    return row;
  }));
}

// shelving: an in-page form (reason and an expiry the board accepts); the server's refusal is shown
// in its own words (a trip alarm, an expiry out of bounds). The shelved list says who, why, until when.

let shelvingAlarm = null;

function askShelve(alarmId) {
  shelvingAlarm = alarmId;
  const form = document.getElementById("shelve-form");
  document.getElementById("shelve-alarm").textContent = alarmId;
  document.getElementById("shelve-error").textContent = "";
  document.getElementById("shelve-reason").value = "";
  form.hidden = false;
  document.getElementById("shelve-reason").focus();
}

function closeShelve() {
  shelvingAlarm = null;
  document.getElementById("shelve-form").hidden = true;
}

async function submitShelve(event) {
  event.preventDefault();
  if (!shelvingAlarm) return;
  const reason = document.getElementById("shelve-reason").value.trim();
  const error = document.getElementById("shelve-error");
  if (!reason) { error.textContent = "A reason is required to shelve an alarm."; return; }
  const untilS = Date.now() / 1000 + Number(document.getElementById("shelve-expiry").value);
  try {
    await api(`/api/alarms/${encodeURIComponent(shelvingAlarm)}/shelve`,
      { method: "POST", body: JSON.stringify({ reason, until_s: untilS }) });
    closeShelve();
  } catch (failure) {
    error.textContent = `Not shelved: ${failure.message}`;
  }
  await refreshAlarms();
}

async function unshelve(alarmId) {
  try {
    await api(`/api/alarms/${encodeURIComponent(alarmId)}/unshelve`, { method: "POST" });
  } catch (error) {
    showError(`Unshelve ${alarmId}: ${error.message}`);
  }
  await refreshAlarms();
}

function renderShelved(shelved) {
  const body = document.querySelector("#shelved tbody");
  const cell = (text) => Object.assign(document.createElement("td"), { textContent: text });
  if (!shelved.length) {
    const row = document.createElement("tr");
    row.appendChild(Object.assign(cell("No shelved alarms."), { colSpan: 5 }));
    body.replaceChildren(row);
    return;
  }
  body.replaceChildren(...shelved.map((alarm) => {
    const row = document.createElement("tr");
    row.dataset.shelved = alarm.id;
    const shelf = alarm.shelf || { user: "?", reason: "", until_s: null };
    row.appendChild(cell(`${alarm.severity.toUpperCase()}: ${alarm.id} — ${alarm.text}`));
    row.appendChild(cell(shelf.user));
    row.appendChild(cell(shelf.reason));
    row.appendChild(cell(timeOfDay(shelf.until_s)));
    const action = cell("");
    if (may("alarm.unshelve")) {
      action.appendChild(button(`Unshelve ${alarm.id}`, () => unshelve(alarm.id), { "data-unshelve": alarm.id }));
    }
    row.appendChild(action);
    return row;
  }));
}

export function setUpShelve() {
  document.getElementById("shelve-form").addEventListener("submit", submitShelve);
  document.getElementById("shelve-cancel").addEventListener("click", closeShelve);
  document.getElementById("shelve-form").addEventListener("keydown", (event) => {
    if (event.key === "Escape") closeShelve();
  });
}

export async function refreshAlarms() {
  try {
    const alarms = await api("/api/alarms");
    renderAlarms(alarms);
    renderShelved(alarms.shelved);
  } catch (error) {
    document.getElementById("alarm-banner").textContent = `Alarms unavailable: ${error.message}`;
  }
}

async function acknowledge(alarmId) {
  try {
    await api(`/api/alarms/${encodeURIComponent(alarmId)}/acknowledge`, { method: "POST" });
  } catch (error) {
    showError(`Acknowledge ${alarmId}: ${error.message}`);
  }
  await refreshAlarms();
}
