// The plant's values in the operator's words: numbers in engineering units, a reading with its sensor's
// quality, when something happened, a valve's commanded and measured positions and whether they disagree,
// the atmospheres' names. Shared by the synoptic, the command results, the exposure record and the run
// panel, so a word means the same thing wherever it appears.

export const ATMOSPHERE_WORDS = {
  air: "AIR",
  evacuating: "EVACUATING",
  vacuum: "VACUUM",
  back_filling: "BACK-FILLING",
  inert_in_spec: "INERT (in spec)",
  inert_out_of_spec: "INERT OUT OF SPEC",
  process: "PROCESS GAS",
  unknown: "UNKNOWN",
};

export function engineering(value, unit) {
  if (value === null || value === undefined) return "unknown";
  if (value === 0) return `0 ${unit}`;
  const exponent = Math.floor(Math.log10(Math.abs(value)) / 3) * 3;
  const prefixes = { "-12": "p", "-9": "n", "-6": "µ", "-3": "m", 0: "", 3: "k", 6: "M" };
  const prefix = prefixes[exponent];
  if (prefix === undefined) return `${value.toExponential(2)} ${unit}`;
  const scaled = value / 10 ** exponent;
  return `${scaled.toPrecision(3)} ${prefix}${unit}`;
}

export function readingText(label, reading, unit, digits) {
  if (!reading) return null;
  if (reading.value === null || reading.quality !== "ok") {
    const value = reading.value === null ? "no value" : `${reading.value.toFixed(digits)} ${unit}`;
    return { text: `${label}: ${value} (${reading.quality.replace("_", " ")})`, stale: true };
  }
  return { text: `${label}: ${reading.value.toFixed(digits)} ${unit}`, stale: false };
}

export function timeOfDay(epochS) {
  return epochS ? new Date(epochS * 1000).toLocaleTimeString() : "—";
}

export function measuredPosition(valve) {
  if (valve.open_ls === null && valve.closed_ls === null) return "unknown";
  if (valve.confirmed_open) return "open";
  if (valve.confirmed_closed) return "closed";
  if (valve.open_ls && valve.closed_ls) return "fault (both limit switches)";
  return "between";
}

export function commandedPosition(valve) {
  if (valve.commanded_open === null) return "not commanded";
  return valve.commanded_open ? "open" : "closed";
}

export function disagrees(valve) {
  // without limit switches there is no measurement to disagree with; "unknown" already says so
  if (valve.commanded_open === null || (valve.open_ls === null && valve.closed_ls === null)) return false;
  return valve.commanded_open ? !valve.confirmed_open : !valve.confirmed_closed;
}

// Short human names for the ids an operator sees, the full id kept for a tooltip (`named`). One function,
// used by every view, so an id reads the same everywhere:
//   batch  B20261206T183028Z-24c1          -> "Batch 18:30 (24c1)"  (its start in local time, its tag)
//   job    B20261206T183028Z-24c1-J01      -> "J01 thin-film cell" (the recipe's name, once the run
//                                               panel has read the batch), else "J01"
//   item   B20261206T183028Z-24c1-J01-base -> "electrode of J01"; -box-in "inlet container of J01";
//          -box-out "outlet container of J01"; -<target> "Li target T1 of J01" (its material once known)
// Anything else (an item registered by hand, "C1") is its own short name.
const BATCH_ID = /^B(\d{4})(\d{2})(\d{2})T(\d{2})(\d{2})(\d{2})Z-([0-9a-f]+)$/;
const JOB_ID = /^(B\d{8}T\d{6}Z-[0-9a-f]+)-(J\d+)$/;
const ITEM_ID = /^(B\d{8}T\d{6}Z-[0-9a-f]+-J\d+)-(.+)$/;
const ITEM_ROLES = { base: "electrode", "box-in": "inlet container", "box-out": "outlet container" };

export const recipeOfJob = new Map(); // job id -> the recipe's name, filled by the run panel
export const materialOf = new Map(); // item id -> its material, filled by the process picture

export function humanName(id) {
  if (typeof id !== "string") return String(id);
  const batch = BATCH_ID.exec(id);
  if (batch) {
    const [, y, mo, d, h, mi, s, tag] = batch;
    const at = new Date(Date.UTC(Number(y), Number(mo) - 1, Number(d), Number(h), Number(mi), Number(s)));
    const time = at.toLocaleTimeString([], { hour: "2-digit", minute: "2-digit", hour12: false });
    const today = at.toDateString() === new Date().toDateString();
    const day = today ? "" : `${at.toLocaleDateString([], { day: "numeric", month: "short" })} `;
    return `Batch ${day}${time} (${tag})`;
  }
  const job = JOB_ID.exec(id);
  if (job) return recipeOfJob.has(id) ? `${job[2]} ${recipeOfJob.get(id)}` : job[2];
  const item = ITEM_ID.exec(id);
  if (item) {
    const jobShort = JOB_ID.exec(item[1])[2];
    const material = materialOf.get(id);
    const role = ITEM_ROLES[item[2]] || `${material ? `${material} ` : ""}target ${item[2]}`;
    return `${role} of ${jobShort}`;
  }
  return id;
}

// A node with the short name, the full id in its tooltip and data-id (for a test or a copy).
export function named(id, tag) {
  const node = document.createElement(tag || "span");
  node.textContent = humanName(id);
  node.title = id;
  node.dataset.id = id;
  node.className = "named-id";
  return node;
}

// Free text from the controller (a prompt, a message) with every batch, job or item id in it replaced by
// its short name in quotes; the full text stays available as the node's title where it is shown.
// "batch B2026…-24c1 owns the line" -> "“Batch 18:30 (24c1)” owns the line": the word the name repeats goes.
const ANY_ID = /(\b[Bb]atch )?(B\d{8}T\d{6}Z-[0-9a-f]+(?:-J\d+(?:-[A-Za-z0-9_]+(?:-(?:in|out))?)?)?)/g;

export function humanText(text) {
  return text.replace(ANY_ID, (match, word, id) => {
    const name = humanName(id);
    return `${word && !name.startsWith("Batch") ? word : ""}“${name}”`;
  });
}
