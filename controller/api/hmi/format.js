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
