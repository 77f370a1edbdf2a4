// usher console: signs in with the admin token, then draws the picture the
// live feed (/console/feed, Server-Sent Events) sends every second, and
// acts through the admin API (/api/v1) with the session cookie and the
// session's CSRF token. Plain DOM, no library: text goes in with
// textContent only, never as HTML.
"use strict";

const state = { csrf: null, feed: null, picture: null, receivedAt: 0 };

const $ = (id) => document.getElementById(id);

function show(signedIn) {
  $("sign-in-view").hidden = signedIn;
  $("fleet-view").hidden = !signedIn;
  $("sign-out").hidden = !signedIn;
}

function notice(text, isError) {
  const n = $("notice");
  n.textContent = text;
  n.className = isError ? "error" : "";
}

async function start() {
  const r = await fetch("/console/session", { credentials: "same-origin" });
  if (r.status !== 200) {
    show(false);
    return;
  }
  const s = await r.json();
  state.csrf = s.csrf;
  $("who").textContent = s.who;
  show(true);
  connect();
}

function connect() {
  if (state.feed) state.feed.close();
  const feed = new EventSource("/console/feed");
  feed.addEventListener("fleet", (e) => {
    state.picture = JSON.parse(e.data);
    state.receivedAt = Date.now();
    draw();
  });
  feed.addEventListener("signed-out", () => {
    feed.close();
    show(false);
  });
  state.feed = feed;
}

async function signIn(ev) {
  ev.preventDefault();
  const r = await fetch("/console/session", {
    method: "POST",
    credentials: "same-origin",
    headers: { "content-type": "application/json" },
    body: JSON.stringify({ token: $("token").value.trim() }),
  });
  $("token").value = "";
  if (r.status !== 200) {
    const body = await r.json().catch(() => ({}));
    $("sign-in-error").textContent = body.error || "sign-in failed (" + r.status + ")";
    return;
  }
  $("sign-in-error").textContent = "";
  await start();
}

async function signOut() {
  await fetch("/console/session/end", {
    method: "POST",
    credentials: "same-origin",
    headers: { "x-csrf-token": state.csrf },
  });
  if (state.feed) state.feed.close();
  state.csrf = null;
  show(false);
}

// One action through the admin API, after the operator confirms it.
async function act(what, path) {
  if (!window.confirm(what + "?")) return;
  const r = await fetch("/api/v1" + path, {
    method: "POST",
    credentials: "same-origin",
    headers: { "x-csrf-token": state.csrf },
  });
  const body = await r.json().catch(() => ({}));
  if (r.ok) {
    notice(what + ": done");
  } else {
    notice(what + ": " + (body.error || r.status), true);
  }
}

function cell(row, text, cls) {
  const td = document.createElement("td");
  td.textContent = text;
  if (cls) td.className = cls;
  row.appendChild(td);
  return td;
}

function button(td, label, what, path) {
  const b = document.createElement("button");
  b.textContent = label;
  b.dataset.action = label.toLowerCase();
  b.addEventListener("click", () => act(what, path));
  td.appendChild(b);
}

const enc = encodeURIComponent;

function drawApps(apps, servers) {
  const body = $("apps").tBodies[0];
  body.replaceChildren();
  for (const a of apps) {
    const tr = document.createElement("tr");
    tr.dataset.app = a.name;
    cell(tr, a.name);
    cell(tr, a.enabled ? "yes" : "no");
    cell(tr, a.swamped ? "yes: " + a.swamped : "no", a.swamped ? "error" : "");
    cell(tr, a.mode || "");
    cell(tr, String(servers.filter((s) => s.app === a.name).length), "num");
    const td = cell(tr, "");
    if (a.enabled) button(td, "Disable", "Disable app " + a.name, "/apps/" + enc(a.name) + "/disable");
    else button(td, "Enable", "Enable app " + a.name, "/apps/" + enc(a.name) + "/enable");
    body.appendChild(tr);
  }
}

function age(secs) {
  if (secs === null || secs === undefined) return "no data";
  return secs < 10 ? secs.toFixed(1) + " s" : Math.round(secs) + " s";
}

function drawServers(servers) {
  const problemsOnly = $("problems-only").checked;
  const body = $("servers").tBodies[0];
  body.replaceChildren();
  for (const s of servers) {
    if (problemsOnly && s.state === "ok") continue;
    const tr = document.createElement("tr");
    tr.dataset.server = s.name;
    tr.dataset.state = s.state;
    cell(tr, s.name);
    cell(tr, s.app);
    const st = cell(tr, s.state + (s.failed ? ": " + s.failed : ""), "state state-" + s.state);
    st.dataset.field = "state";
    cell(tr, (100 * s.share).toFixed(1) + " %", "num");
    cell(tr, s.load === null || s.load === undefined ? "-" : String(s.load), "num");
    cell(tr, age(s.load_age_secs), "num").dataset.field = "age";
    cell(tr, s.pid ? String(s.pid) : "-", "num");
    cell(tr, String(s.capacity), "num");
    const td = cell(tr, "");
    const path = "/servers/" + enc(s.name);
    if (s.enabled) button(td, "Disable", "Disable server " + s.name, path + "/disable");
    else button(td, "Enable", "Enable server " + s.name, path + "/enable");
    if (s.state === "draining" || s.state === "drained") {
      button(td, "Undrain", "Undrain server " + s.name, path + "/undrain");
    } else {
      button(td, "Drain", "Drain server " + s.name, path + "/drain");
    }
    body.appendChild(tr);
  }
}

function drawEvents(events) {
  const want = $("event-type").value.trim();
  const body = $("events").tBodies[0];
  body.replaceChildren();
  for (const e of events) {
    if (want && e.type_name !== want && String(e.type_code) !== want) continue;
    const tr = document.createElement("tr");
    tr.dataset.type = e.type_name;
    cell(tr, new Date(e.time_occurred_us / 1000).toLocaleTimeString());
    cell(tr, e.type_name);
    cell(tr, e.origin_name || e.origin_id);
    cell(tr, e.text, "text");
    body.appendChild(tr);
  }
}

// Guided recovery: what can help, per alert type, for a server alert.
const SERVER_HELP = [
  ["Drain", "drain", "no new users; users with a session finish here"],
  ["Restart", "restart", "its agent restarts the process (a new PID)"],
  ["Disable", "disable", "out of rotation now, sessions included"],
];
const HELP = {
  server_failed: SERVER_HELP,
  restart_refused: SERVER_HELP,
  restart_failed: SERVER_HELP,
  trend_predicted: SERVER_HELP,
};

async function acknowledge(a) {
  const r = await fetch("/console/alerts/ack", {
    method: "POST",
    credentials: "same-origin",
    headers: { "content-type": "application/json", "x-csrf-token": state.csrf },
    body: JSON.stringify({ agent_id: a.agent_id, seq: a.seq }),
  });
  notice(r.ok ? "alert acknowledged" : "acknowledge failed (" + r.status + ")", !r.ok);
}

function drawAlerts(alerts, servers) {
  $("alert-count").textContent = alerts.length ? String(alerts.length) : "none";
  const body = $("alerts").tBodies[0];
  body.replaceChildren();
  const known = new Set(servers.map((s) => s.name));
  for (const a of alerts) {
    const tr = document.createElement("tr");
    tr.dataset.type = a.type_name;
    tr.dataset.component = a.origin_name || a.origin_id;
    cell(tr, new Date(a.time_occurred_us / 1000).toLocaleTimeString());
    cell(tr, a.type_name);
    cell(tr, tr.dataset.component);
    cell(tr, a.text, "text");
    const td = cell(tr, "", "text");
    const server = tr.dataset.component;
    if (known.has(server)) {
      for (const [label, action, what] of HELP[a.type_name] || []) {
        const line = document.createElement("span");
        line.className = "help";
        button(line, label, label + " server " + server + " (" + what + ")",
          "/servers/" + enc(server) + "/" + action);
        const note = document.createElement("small");
        note.textContent = what;
        line.appendChild(note);
        td.appendChild(line);
      }
    }
    const ack = document.createElement("button");
    ack.textContent = "Acknowledge";
    ack.dataset.action = "acknowledge";
    ack.addEventListener("click", () => acknowledge(a));
    td.appendChild(ack);
    body.appendChild(tr);
  }
}

function draw() {
  const p = state.picture;
  if (!p) return;
  drawAlerts(p.alerts || [], p.servers);
  drawApps(p.apps, p.servers);
  drawServers(p.servers);
  drawEvents(p.events);
}

// The age of the last picture, so a stalled feed shows.
function tickLive() {
  const live = $("live");
  if (!state.receivedAt) return;
  const secs = (Date.now() - state.receivedAt) / 1000;
  live.textContent = "live, updated " + secs.toFixed(0) + " s ago";
  live.className = secs > 3 ? "live stale" : "live";
}

document.addEventListener("DOMContentLoaded", () => {
  $("sign-in-form").addEventListener("submit", signIn);
  $("sign-out").addEventListener("click", signOut);
  $("problems-only").addEventListener("change", draw);
  $("event-type").addEventListener("input", draw);
  setInterval(tickLive, 1000);
  start();
});
