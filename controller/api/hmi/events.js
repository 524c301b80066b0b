// The line's recent events, newest first: the flight recorder's timeline (GET /api/timeline) of the last
// hour, read again every few seconds. The same rows, in the same words, as the replay's timeline, the
// certificate's events and `depline timeline`: job and phase events, alarms with who acknowledged them,
// every refused, failed, forced or safe-action command, mode and station changes, item moves; the alarm
// that opened a cascade is marked FIRST OUT. An operator sees what just happened without a replay; the
// rows come from the records, so a restarted controller shows the hour before it too.

import { element } from "./dom.js";

const EVENTS_WINDOW_S = 3600;
const EVENTS_POLL_MS = 5000;
const MAX_EVENTS = 200; // newest first: an hour of a busy night stays one scroll of the panel

export function utc(s) {
  return new Date(s * 1000).toISOString().replace("T", " ").replace(/\.\d+Z$/, " UTC");
}

export function eventText(entry) {
  return `${utc(entry.ts).slice(11, 19)} ${entry.source}: ${entry.text}${entry.first_out ? " — FIRST OUT" : ""}`;
}

function say(text) {
  const hint = document.getElementById("events-hint");
  hint.textContent = text;
  hint.hidden = !text;
}

async function refreshEvents() {
  const now = Date.now() / 1000;
  let response;
  try {
    response = await fetch(`/api/timeline?from=${now - EVENTS_WINDOW_S}&to=${now + 60}`);
  } catch {
    say("The records cannot be read now: the controller does not answer.");
    return;
  }
  if (!response.ok) {
    say(response.status === 503 ? "This controller keeps no records: no events to show."
      : `The records cannot be read now (HTTP ${response.status}).`);
    return;
  }
  say("");
  const entries = (await response.json()).entries.slice(-MAX_EVENTS).reverse();
  const list = document.getElementById("events");
  list.replaceChildren(...entries.map((entry) => element("li", {
    "data-ts": String(entry.ts), "data-source": entry.source, class: entry.first_out ? "first-out" : "",
  }, eventText(entry))));
  if (!entries.length) list.append(element("li", {}, "No event in the last hour."));
}

export function setUpEvents() {
  refreshEvents();
  setInterval(refreshEvents, EVENTS_POLL_MS);
}
