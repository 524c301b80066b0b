// What the page knows of the line and of its session (`hmi`), and the WebSocket /ws that keeps it
// current: every "state" message is recorded for the trends and redrawn in the synoptic, every "alarm"
// message re-reads the alarms. A closed socket says so on screen and reconnects after RECONNECT_MS.

import { refreshAlarms } from "./alarms.js";
import { renderAge, renderSynoptic } from "./synoptic.js";
import { loadTrendHistory, recordTrends, trends } from "./trends.js";

export const STALE_AFTER_S = 3;
export const POLL_MS = 2000;
const RECONNECT_MS = 2000;

export const hmi = {
  token: sessionStorage.getItem("depline.token"),
  session: JSON.parse(sessionStorage.getItem("depline.session") || "null"),
  state: null,
  stateReceivedMs: 0,
  socket: null,
};

function setFeedStatus(text, down) {
  const status = document.getElementById("feed-status");
  status.textContent = text;
  status.classList.toggle("down", down);
}

export function connect() {
  const scheme = location.protocol === "https:" ? "wss" : "ws";
  const socket = new WebSocket(`${scheme}://${location.host}/ws`);
  hmi.socket = socket;
  trends.connectedMs = Date.now(); // live samples from here on; the history fills the time before
  socket.addEventListener("open", () => {
    setFeedStatus("live feed: connected", false);
    loadTrendHistory();
  });
  socket.addEventListener("message", (event) => {
    const message = JSON.parse(event.data);
    if (message.type === "state") {
      hmi.state = message.data;
      hmi.stateReceivedMs = Date.now();
      recordTrends(hmi.state, hmi.stateReceivedMs);
      renderSynoptic();
      renderAge();
    } else if (message.type === "alarm") {
      refreshAlarms();
    }
  });
  socket.addEventListener("close", () => {
    setFeedStatus("live feed: DISCONNECTED — values are stale; reconnecting", true);
    setTimeout(connect, RECONNECT_MS);
  });
}
