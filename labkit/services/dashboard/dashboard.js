// The labkit dashboard: one snapshot, then live changes from /api/events (server-sent events).
"use strict";
const phones = new Map();
let openPhone = null;
const token = new URLSearchParams(location.search).get("token");
const withToken = path => path + (token ? "?token=" + encodeURIComponent(token) : "");

function el(tag, text, cls) {
  const node = document.createElement(tag);
  if (text !== undefined && text !== null) node.textContent = String(text);
  if (cls) node.className = cls;
  return node;
}

function ago(when) {
  if (!when) return "never";
  const s = Math.max(0, Date.now() / 1000 - when);
  const wall = new Date(when * 1000).toLocaleTimeString();
  if (s < 60) return `${Math.round(s)} s ago (${wall})`;
  if (s < 3600) return `${Math.round(s / 60)} min ago (${wall})`;
  return wall;
}

function phoneRow(p) {
  const row = el("tr");
  row.id = "phone-" + p.mac.replaceAll(":", "");
  row.dataset.mac = p.mac;
  row.dataset.state = p.state;
  row.append(el("td", p.name || p.mac), el("td", p.mac), el("td", p.address || "-"));
  const state = el("td");
  state.append(el("span", p.state, "state state-" + p.state));
  const faults = Object.entries(p.faults || {}).map(([k, v]) => `${k} ×${v}`).join(", ");
  row.append(state, el("td", p.firmware || "-"), el("td", faults || "-"),
             el("td", ago(p.last_contact), "ago"), el("td", p.problem || "", "problem"));
  row.addEventListener("click", () => showTimeline(p.mac));
  return row;
}

function drawPhone(p) {
  phones.set(p.mac, p);
  const body = document.querySelector("#phones tbody");
  const old = document.getElementById("phone-" + p.mac.replaceAll(":", ""));
  const row = phoneRow(p);
  if (old) old.replaceWith(row); else body.append(row);
  if (openPhone === p.mac) showTimeline(p.mac);
}

function drawCounters(c) {
  document.getElementById("stages").replaceChildren(
    ...Object.entries(c.stages).map(([k, v]) => el("span", `${k}: ${v}`, "stage-" + k)));
  const body = document.querySelector("#services tbody");
  body.replaceChildren(...Object.entries(c.services).map(([name, s]) => {
    const row = el("tr");
    row.append(el("td", name), el("td", s.requests, "num"), el("td", s.errors, "num"),
               el("td", s.malformed, "num"), el("td", s.kernel_drops, "num"));
    return row;
  }));
}

function pairs(obj) {
  const items = Object.entries(obj || {}).map(([k, v]) => `${k} ${typeof v === "object" ? JSON.stringify(v) : v}`);
  return items.join(", ");
}

function drawSnapshot(s) {
  document.getElementById("lab").textContent = `labkit: ${s.lab.name || ""} (${s.lab.domain || ""})`;
  document.querySelector("#phones tbody").replaceChildren();
  s.phones.forEach(drawPhone);
  drawCounters(s);
  const fired = s.faults_fired || {};
  document.getElementById("faults").replaceChildren(...(s.faults_in_force.length ? s.faults_in_force.map(f =>
    el("li", `${f.label}: ${f.service} ${f.action}, ${pairs(f.when) || "always"}, ` +
             `matching ${pairs(f.match) || "everything"} (fired ${fired[f.label] || 0})`))
    : [el("li", "none")]));
}

async function showTimeline(mac) {
  openPhone = mac;
  const answer = await fetch(withToken("/api/phones/" + encodeURIComponent(mac)));
  if (!answer.ok) return;
  const data = await answer.json();
  const section = document.getElementById("timeline-section");
  const opening = section.hidden;
  section.hidden = false;
  document.getElementById("timeline-phone").textContent = `${data.phone.name || mac} (${data.phone.state})`;
  document.getElementById("timeline").replaceChildren(...data.events.map(e => {
    const fine = ["ok", "accepted", "redirect", "nodata", "ignored"].includes(e.result);
    const cls = e.action === "fault" ? "fault" : (fine ? "" : "bad");
    const when = new Date(e.time * 1000).toLocaleTimeString();
    const rule = e.rule ? ` (rule ${e.rule})` : "";
    return el("li", `${when} ${e.service} ${e.action} ${e.request} → ${e.answer} [${e.result}]${rule}`, cls);
  }));
  if (opening) section.scrollIntoView({block: "start"});
}

document.getElementById("timeline-close").addEventListener("click", () => {
  openPhone = null;
  document.getElementById("timeline-section").hidden = true;
});

function connect() {
  const stream = new EventSource(withToken("/api/events"));
  const live = document.getElementById("live");
  stream.onopen = () => { live.textContent = "live"; live.className = "on"; };
  stream.onerror = () => { live.textContent = "reconnecting…"; live.className = "off"; };
  stream.addEventListener("snapshot", m => drawSnapshot(JSON.parse(m.data)));
  stream.addEventListener("phone", m => drawPhone(JSON.parse(m.data)));
  stream.addEventListener("counters", m => drawCounters(JSON.parse(m.data)));
}

setInterval(() => phones.forEach(drawPhone), 5000);  // keep "last contact" ages current
connect();
