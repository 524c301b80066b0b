// The flight recorder behind the trends: when the operator zooms or pans to a window that starts before
// what the page holds (its own samples and GET /api/trends, hours at most), the page asks the record,
// GET /api/samples?channel=DEVICE.CHANNEL&max_points=N (each bucket's lowest, highest and first untrusted
// reading, so a spike and a gap survive), and the chart draws the recorded points before the page's own,
// one line in one chart. Which channel is a trend's comes from the topology: a space's first pressure
// gauge, its dew-point transmitter's frost point, its heater controller's temperature.
// A recorded channel is stored on change and at least every heartbeat: a recorded value holds until the
// next one for 1.5 heartbeats (the rejudge's rule), not the live feed's seconds. A controller without a
// record answers 503 once; the page then says so under the charts and never asks again.

const RECORD_POINTS = 600;
const ASK_STEPS = 20; // a live window is asked again once it has slid by 1/20 of itself

export const record = {
  points: new Map(), // series id -> [{ t, v, r: true }] on the page's clock
  key: "",
  available: true,
  note: "",
  holdMs: 900_000,
};

export function recordChannel(topology, space, kind) {
  const mine = topology ? topology.spaces.find((s) => s.name === space) : null;
  if (!mine) return null;
  if (kind === "pressure") return mine.gauges.length ? `${mine.gauges[0].device}.${mine.gauges[0].channel}` : null;
  if (kind === "frost") return mine.devices.dewpoint_transmitter ? `${mine.devices.dewpoint_transmitter}.frost_point` : null;
  if (kind === "substrate") return mine.devices.temperature_controller ? `${mine.devices.temperature_controller}.temperature` : null;
  return null;
}

export function holdMsOf(topology) {
  return 1500 * (topology && topology.recording_heartbeat_s ? topology.recording_heartbeat_s : 600);
}

async function askOne(channel, fromS, toS, offsetMs) {
  const query = new URLSearchParams({ channel, from: fromS.toFixed(3), to: toS.toFixed(3), format: "jsonl",
    max_points: String(RECORD_POINTS) });
  const response = await fetch(`/api/samples?${query}`, { cache: "no-store" });
  if (response.status === 503) throw Object.assign(new Error("no record"), { noRecord: true });
  if (!response.ok) return []; // a channel never recorded (404): no history for that trace
  const text = await response.text();
  return text.split("\n").filter(Boolean).map((line) => JSON.parse(line)).map((row) => ({
    t: row.ts * 1000 + offsetMs, v: row.quality === "ok" && row.value !== null ? row.value : null, r: true,
  }));
}

// Asks the record for [fromMs, toMs] (page clock) of every series that has a channel, unless the same
// window (to 1/ASK_STEPS of it) was asked already; `done` redraws.
export function askRecord(seriesList, topology, fromMs, toMs, offsetMs, done) {
  if (!record.available || toMs <= fromMs) return;
  const stepMs = Math.max(1000, (toMs - fromMs) / ASK_STEPS);
  const key = `${seriesList.map((s) => s.id).join(",")}|${Math.floor(fromMs / stepMs)}|${Math.ceil(toMs / stepMs)}`;
  if (key === record.key) return;
  record.key = key;
  record.holdMs = holdMsOf(topology);
  const fromS = (fromMs - offsetMs) / 1000;
  const toS = (toMs - offsetMs) / 1000;
  Promise.all(seriesList.map(async (series) => {
    const channel = recordChannel(topology, series.space, series.kind.key);
    if (!channel) return;
    record.points.set(series.id, await askOne(channel, fromS, toS, offsetMs));
  })).then(() => {
    record.note = "";
    done();
  }).catch((error) => {
    if (error.noRecord) {
      record.available = false;
      record.note = "This controller keeps no flight record: the trends reach back only as far as the page holds.";
    } else {
      record.key = ""; // asked again at the next redraw
    }
    done();
  });
}

// A series' points with the recorded ones before its first own point; a recorded value held longer than
// holdMs (nothing stored for 1.5 heartbeats: the recorder was down) ends in a gap.
export function withRecord(series) {
  const recorded = record.points.get(series.id);
  if (!recorded || !recorded.length) return series.points;
  const firstMs = series.points.length ? series.points[0].t : Infinity;
  const joined = [];
  for (const p of recorded) {
    if (p.t >= firstMs) break;
    const last = joined[joined.length - 1];
    if (last && last.v !== null && p.t - last.t > record.holdMs) joined.push({ t: last.t + record.holdMs, v: null, r: true, quiet: true });
    joined.push(p);
  }
  const last = joined[joined.length - 1];
  if (last && last.v !== null && firstMs - last.t > record.holdMs) joined.push({ t: last.t + record.holdMs, v: null, r: true, quiet: true });
  return joined.length ? joined.concat(series.points) : series.points;
}
