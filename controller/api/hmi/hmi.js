// The operator HMI: plain JavaScript in native ES modules, one per view, no build step, nothing fetched
// from outside the controller. This module starts every view.
// Live state arrives over the WebSocket /ws once somebody logs in ("state" messages at the service's
// bounded rate), and from GET /api/state every second until then; alarms are re-read on every "alarm"
// message and every 2 s, prompts and the batch every 2 s (they have no feed message).
// Every value on screen says when it cannot be trusted: unknown, a sensor's quality word, or STALE when
// the last state is older than STALE_AFTER_S. Colour always repeats a word, never replaces it.
// Served by `depline replay` (body data-mode="replay") the page starts replay.js instead: recorded data only.

import { refreshAlarms, setUpShelve } from "./alarms.js";
import { setUpEquipment } from "./equipment.js";
import { setUpEvents } from "./events.js";
import { setUpItems } from "./exposure.js";
import { setUpFaceplates } from "./faceplate.js";
import { hmi, POLL_MS } from "./live.js";
import { refreshPrompts } from "./prompts.js";
import { refreshBatch, setUpRunPanel } from "./run.js";
import { login, logout, setSession } from "./session.js";
import { renderAge } from "./picture.js";
import { startReplay } from "./replay.js";
import { setUpTrends } from "./trends.js";

function start() {
  if (document.body.dataset.mode === "replay") { startReplay(); return; } // `depline replay`: no live feed
  document.getElementById("login-form").addEventListener("submit", login);
  document.getElementById("logout-button").addEventListener("click", logout);
  setSession(hmi.token, hmi.session); // opens the live feed, or reads the line until somebody logs in
  setInterval(renderAge, 1000);
  setUpRunPanel();
  setUpShelve();
  setUpItems();
  setUpFaceplates();
  setUpEquipment();
  setUpTrends();
  setUpEvents();
  setInterval(() => { refreshAlarms(); refreshPrompts(); refreshBatch(); }, POLL_MS);
}

document.addEventListener("DOMContentLoaded", start);
