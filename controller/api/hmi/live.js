// What the page knows of the line and of its session (`hmi`), and how it stays current. Anybody may read
// the line: until somebody logs in on this page it reads GET /api/state every READ_MS. A logged-in page
// opens the WebSocket /ws instead and sends its token as the first message (never in the URL); every
// "state" message is recorded for the trends and redrawn in the synoptic, every "alarm" message re-reads
// the alarms. The server closes a socket with 4401 when the session has ended (the page ends it on screen
// and reads again) and with 4409 when the same user opened more screens elsewhere (the page reads again
// and says why); any other close says so on screen and reconnects after RECONNECT_MS.

import { refreshAlarms } from "./alarms.js";
import { renderAge, renderPicture } from "./picture.js";
import { renderUnowned } from "./statusbar.js";
import { loadTrendHistory, recordTrends, trends } from "./trends.js";

export const STALE_AFTER_S = 3;
export const POLL_MS = 2000;
const READ_MS = 1000;
const RECONNECT_MS = 2000;
const CLOSE_UNAUTHENTICATED = 4401;
const CLOSE_SUPERSEDED = 4409;
const READING = "reading the line every 1 s (log in for the live feed)";

export const hmi = {
  token: sessionStorage.getItem("depline.token"),
  session: JSON.parse(sessionStorage.getItem("depline.session") || "null"),
  state: null,
  stateReceivedMs: 0,
  socket: null,
};

let reader = null; // the interval reading GET /api/state while nobody is logged in
let sessionEnded = () => {};

function setFeedStatus(text, down) {
  const status = document.getElementById("feed-status");
  status.textContent = text;
  status.classList.toggle("down", down);
}

function showState(state) {
  hmi.state = state;
  hmi.stateReceivedMs = Date.now();
  recordTrends(hmi.state, hmi.stateReceivedMs);
  renderPicture();
  renderUnowned(state.unowned_items);
  renderAge();
}

// Called at every log-in and log-out: a token means the live feed, none means reading over HTTP.
// `onSessionEnded` is how the page hears that the server no longer knows the token.
export function follow(token, onSessionEnded) {
  sessionEnded = onSessionEnded;
  stopReading();
  retireSocket();
  if (token) connect(token);
  else startReading(READING);
}

function startReading(why) {
  setFeedStatus(why, false);
  trends.connectedMs = Date.now(); // fresh samples from here on; the history fills the time before
  loadTrendHistory();
  const read = async () => {
    try {
      const response = await fetch("/api/state");
      if (!response.ok) throw new Error(`${response.status}`);
      showState(await response.json());
      setFeedStatus(why, false);
    } catch {
      setFeedStatus("reading the line FAILED — values are stale; retrying", true);
    }
  };
  read();
  reader = setInterval(read, READ_MS);
}

function stopReading() {
  clearInterval(reader);
  reader = null;
}

function retireSocket() {
  if (!hmi.socket) return;
  hmi.socket.retired = true; // its close is expected: no reconnect
  hmi.socket.close();
  hmi.socket = null;
}

function connect(token) {
  const scheme = location.protocol === "https:" ? "wss" : "ws";
  const socket = new WebSocket(`${scheme}://${location.host}/ws`);
  hmi.socket = socket;
  setFeedStatus("live feed: connecting…", false);
  trends.connectedMs = Date.now(); // live samples from here on; the history fills the time before
  socket.addEventListener("open", () => {
    socket.send(JSON.stringify({ type: "auth", token }));
    setFeedStatus("live feed: connected", false);
    loadTrendHistory();
  });
  socket.addEventListener("message", (event) => {
    const message = JSON.parse(event.data);
    if (message.type === "state") showState(message.data);
    else if (message.type === "alarm") refreshAlarms();
  });
  socket.addEventListener("close", (event) => {
    if (socket.retired) return;
    hmi.socket = null;
    if (event.code === CLOSE_UNAUTHENTICATED) {
      sessionEnded(); // logs out on screen, which starts reading again
    } else if (event.code === CLOSE_SUPERSEDED) {
      startReading(`live feed closed: ${event.reason || "this user opened more screens elsewhere"}; ${READING}`);
    } else {
      setFeedStatus("live feed: DISCONNECTED — values are stale; reconnecting", true);
      setTimeout(() => { if (hmi.token === token && !hmi.socket && !reader) connect(token); }, RECONNECT_MS);
    }
  });
}
