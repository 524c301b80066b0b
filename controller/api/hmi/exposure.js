// An item's exposure record, opened from its label in the synoptic: where it has been, and every ledger
// entry in a non-inert atmosphere.

import { ATMOSPHERE_WORDS, humanName, timeOfDay } from "./format.js";
import { api } from "./session.js";

let shownItem = null;
const LEDGER_EVENT_WORDS = {
  registered: "registered",
  moved: "moved",
  opened: "container opened",
  sealed: "container sealed",
  atmosphere: "atmosphere changed",
  non_inert: "exposed in a non-inert atmosphere",
};

async function openItem(itemId) {
  shownItem = itemId;
  const panel = document.getElementById("item-panel");
  panel.hidden = false;
  document.getElementById("item-title").textContent = `Exposure record of ${humanName(itemId)}`;
  document.getElementById("item-title").title = itemId;
  const verdict = document.getElementById("item-verdict");
  verdict.className = "verdict";
  verdict.textContent = "Loading…";
  let ledger;
  try {
    ledger = await api(`/api/items/${encodeURIComponent(itemId)}/ledger`);
  } catch (error) {
    verdict.textContent = `No exposure record: ${error.message}`;
    renderItemTables([], []);
    return;
  }
  if (shownItem !== itemId) return; // another item was chosen meanwhile
  if (ledger.ever_exposed_to_non_inert) {
    verdict.className = "verdict exposed";
    verdict.textContent = `${humanName(itemId)}: EXPOSED to a non-inert atmosphere — ${ledger.non_inert.length} ledger ` +
      `entr${ledger.non_inert.length === 1 ? "y" : "ies"}, ${ledger.exposed_s.toFixed(0)} s exposed in total`;
  } else {
    verdict.textContent = `${humanName(itemId)}: never exposed to a non-inert atmosphere`;
  }
  renderItemTables(ledger.path, ledger.non_inert);
  document.getElementById("item-close").focus();
}

function renderItemTables(path, entries) {
  const cell = (text) => Object.assign(document.createElement("td"), { textContent: text });
  const rowOf = (texts) => {
    const row = document.createElement("tr");
    for (const text of texts) row.appendChild(cell(text));
    return row;
  };
  const stays = path.map((stay) => rowOf([stay.space, timeOfDay(stay.since_ts),
    stay.until_ts === null ? "now" : timeOfDay(stay.until_ts)]));
  document.querySelector("#item-path tbody").replaceChildren(...stays);
  const rows = entries.map((entry) => {
    const row = rowOf([timeOfDay(entry.ts), LEDGER_EVENT_WORDS[entry.event] || entry.event, entry.space,
      ATMOSPHERE_WORDS[entry.atmosphere] || entry.atmosphere, entry.exposed ? "yes" : "no"]);
    row.dataset.entry = entry.event;
    return row;
  });
  if (!rows.length) {
    const none = rowOf(["none"]);
    none.firstChild.colSpan = 5;
    rows.push(none);
  }
  document.querySelector("#item-entries tbody").replaceChildren(...rows);
}

export function setUpItems() {
  document.getElementById("synoptic").addEventListener("click", (event) => {
    const link = event.target.closest("[data-item]");
    if (!link) return;
    event.preventDefault();
    openItem(link.dataset.item);
  });
  document.getElementById("item-close").addEventListener("click", () => {
    shownItem = null;
    document.getElementById("item-panel").hidden = true;
  });
}
