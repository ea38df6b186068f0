// Rollout dashboard: three pages (fleet, function, release) drawn from the server's JSON, refreshed by polling.
// No framework and nothing fetched from elsewhere; every text goes in through textContent.
"use strict";

const CSRF = document.querySelector('meta[name="rollout-csrf"]').content;
const REFRESH_MS = Number(document.querySelector('meta[name="rollout-refresh-ms"]').content) || 2000;
const SVG = "http://www.w3.org/2000/svg";
const state = { session: null, filter: { text: "", attention: false }, timer: null, busy: false };

// --- small DOM helpers ------------------------------------------------------------------------------
function h(tag, attrs, ...children) {
  const el = document.createElement(tag);
  for (const [key, value] of Object.entries(attrs || {})) {
    if (value === null || value === undefined || value === false) continue;
    if (key.startsWith("on")) el.addEventListener(key.slice(2), value);
    else if (key === "class") el.className = value;
    else el.setAttribute(key, value === true ? "" : String(value));
  }
  for (const child of children.flat()) {
    if (child === null || child === undefined || child === false) continue;
    el.append(child instanceof Node ? child : document.createTextNode(String(child)));
  }
  return el;
}
function s(tag, attrs, ...children) {
  const el = document.createElementNS(SVG, tag);
  for (const [key, value] of Object.entries(attrs || {})) el.setAttribute(key, String(value));
  for (const child of children.flat()) {
    if (child !== null && child !== undefined) el.append(child instanceof Node ? child : document.createTextNode(String(child)));
  }
  return el;
}
const stateBadge = (value) => h("span", { class: `state state-${value}` }, value || "-");
const pct = (share) => `${Math.round(share * 1000) / 10}%`;
const esc = encodeURIComponent;
function shortTime(iso) {
  if (!iso) return "-";
  const d = new Date(iso);
  return isNaN(d) ? iso : d.toISOString().replace("T", " ").replace(/\.\d+Z$/, "Z");
}
function td(label, ...children) { return h("td", { "data-label": label }, h("div", {}, ...children)); }
function card(title, ...children) {
  return h("section", { class: "card", "aria-label": title }, h("h2", {}, title), ...children);
}

// --- talking to the server --------------------------------------------------------------------------
async function getJSON(path) {
  const response = await fetch(path, { credentials: "same-origin", headers: { Accept: "application/json" } });
  const body = await response.json().catch(() => ({}));
  if (!response.ok) throw new Error((body.error && body.error.message) || `${response.status} ${response.statusText}`);
  return body;
}
async function postAction(name, target, fields) {
  const response = await fetch(`/api/actions/${esc(name)}`, {
    method: "POST",
    credentials: "same-origin",
    headers: { "Content-Type": "application/json", "X-Rollout-CSRF": CSRF },
    body: JSON.stringify({ target, ...fields }),
  });
  const body = await response.json().catch(() => ({}));
  if (!response.ok) throw new Error((body.error && body.error.message) || `${response.status}`);
  return body;
}
function toast(message, isError) {
  const el = document.getElementById("toast");
  el.textContent = message;
  el.className = isError ? "toast error" : "toast";
  el.hidden = false;
  clearTimeout(toast.timer);
  toast.timer = setTimeout(() => { el.hidden = true; }, 8000);
}

// --- actions: a button, a confirmation dialog, a POST ------------------------------------------------
// `seen`: what this page shows that the action checks still holds when it runs (a stale page is refused).
// `only`: the names of the actions to offer (all of the scope's when absent).
function actionButtons(scope, target, when, seen = {}, only = null) {
  if (!state.session || !when) return null;
  const offered = state.session.actions.filter((a) => a.scope === scope && (!only || only.includes(a.name)));
  if (!offered.length) return null;
  return h("div", { class: "actions", role: "group", "aria-label": "Actions" },
    offered.map((a) => h("button", {
      type: "button", class: a.danger ? "danger" : "", "data-action": a.name,
      onclick: () => confirmAction(a, target, seen),
    }, a.label)));
}
function confirmAction(action, target, seen = {}) {
  const dialog = document.getElementById("confirm");
  document.getElementById("confirm-title").textContent = `${action.label}: ${target}`;
  document.getElementById("confirm-question").textContent = action.confirm.replace("{target}", target);
  const fields = document.getElementById("confirm-fields");
  fields.replaceChildren(...action.fields.flatMap((name) => [
    h("label", { for: `field-${name}` }, name),
    h("input", { id: `field-${name}`, name, type: "text", autocomplete: "off" }),
  ]));
  const ok = document.getElementById("confirm-ok");
  ok.textContent = action.label;
  ok.className = action.danger ? "danger" : "";
  document.getElementById("confirm-cancel").onclick = () => dialog.close("cancel");
  dialog.onclose = async () => {
    if (dialog.returnValue !== "ok") return;
    const given = Object.fromEntries(action.fields.map((n) => [n, document.getElementById(`field-${n}`).value]));
    try {
      const context = Object.fromEntries((action.seen || []).filter((n) => seen[n]).map((n) => [n, String(seen[n])]));
      const answer = await postAction(action.name, target, { ...context, ...given });
      const result = answer.result || {};
      state.last = null;
      toast(`${action.label} ${target}: ${result.stop_status || "done"} ${result.status_message || ""}`.trim());
      refresh();
    } catch (err) {
      toast(`${action.label} ${target} failed: ${err.message}`, true);
    }
  };
  dialog.returnValue = "";
  dialog.showModal();
  (fields.querySelector("input") || document.getElementById("confirm-cancel")).focus();
}

// --- charts: inline SVG -----------------------------------------------------------------------------
// series: [{name, color, points: [[iso, value]], step, dashed}]; yMax fixed (traffic) or from the data.
function lineChart({ id, title, series, yMax, yCap, yFormat, emptyText }) {
  const W = 560, H = 220, L = 48, R = 16, T = 12, B = 30;
  const all = series.flatMap((ser) => ser.points.map(([t, v]) => [Date.parse(t), v]));
  const figure = h("figure", { class: "chart", id });
  figure.append(h("figcaption", {}, title));
  if (!all.length) { figure.append(h("p", { class: "empty" }, emptyText || "no data yet")); return figure; }
  let x0 = Math.min(...all.map((p) => p[0])), x1 = Math.max(...all.map((p) => p[0]));
  if (x1 <= x0) x1 = x0 + 60000;
  const top = yMax || Math.min(yCap || Infinity, Math.max(...all.map((p) => p[1])) * 1.15) || yCap || 1;
  const X = (t) => L + ((t - x0) / (x1 - x0)) * (W - L - R);
  const Y = (v) => T + (1 - v / top) * (H - T - B);
  const svg = s("svg", { viewBox: `0 0 ${W} ${H}`, class: "chart", role: "img", "aria-label": title });
  svg.append(s("title", {}, title));
  for (let i = 0; i <= 4; i++) {
    const v = (top * i) / 4;
    svg.append(s("line", { class: "grid", x1: L, x2: W - R, y1: Y(v), y2: Y(v) }));
    svg.append(s("text", { x: L - 6, y: Y(v) + 4, "text-anchor": "end" }, yFormat(v)));
  }
  svg.append(s("line", { class: "axis", x1: L, x2: W - R, y1: H - B, y2: H - B }));
  svg.append(s("line", { class: "axis", x1: L, x2: L, y1: T, y2: H - B }));
  for (const [t, anchor] of [[x0, "start"], [(x0 + x1) / 2, "middle"], [x1, "end"]]) {
    const label = new Date(t).toISOString().slice(11, 19);
    svg.append(s("text", { x: X(t), y: H - 10, "text-anchor": anchor }, label));
  }
  const legend = h("div", { class: "legend" });
  for (const ser of series) {
    if (!ser.points.length) continue;
    let d = "";
    ser.points.forEach(([t, v], i) => {
      const x = X(Date.parse(t)), y = Y(v);
      if (i === 0) d += `M${x},${y}`;
      else d += ser.step ? `H${x}V${y}` : `L${x},${y}`;
    });
    if (ser.extendTo) d += `H${X(x1)}`;
    svg.append(s("path", { d, class: `series${ser.dashed ? " planned" : ""}`, stroke: ser.color }));
    const last = ser.points[ser.points.length - 1];
    if (!ser.dashed) svg.append(s("circle", { cx: X(Date.parse(last[0])), cy: Y(last[1]), r: 3, fill: ser.color }));
    legend.append(h("span", {}, h("span", { class: "swatch", style: null }), ser.name));
    legend.lastChild.firstChild.style.background = ser.color;
  }
  figure.append(svg, legend, chartData(series, yFormat));
  return figure;
}

// The numbers behind a chart, for screen readers and for copying.
function chartData(series, yFormat) {
  const rows = series.filter((ser) => !ser.dashed).flatMap((ser) => ser.points.map(([t, v]) =>
    h("tr", {}, h("td", {}, shortTime(t)), h("td", {}, ser.name), h("td", {}, yFormat(v)))));
  return h("details", { class: "data" }, h("summary", {}, "the numbers"),
    h("table", {}, h("thead", {}, h("tr", {}, ["time", "series", "value"].map((c) => h("th", { scope: "col" }, c)))),
      h("tbody", {}, rows)));
}

function trafficChart(traffic, deployment) {
  const target = deployment ? `v${deployment.target_version}` : "new version";
  const points = traffic.points;
  const planned = traffic.planned.length && points.length ? [points[points.length - 1], ...traffic.planned] : [];
  const figure = lineChart({
    id: "traffic-chart",
    title: `Traffic on ${target} (alias ${deployment ? deployment.alias : ""})`,
    series: [
      { name: `${target} share`, color: "#d9480f", points, step: true, extendTo: !traffic.done && !planned.length },
      { name: "planned", color: "#d9480f", points: planned, step: true, dashed: true },
    ],
    yMax: 100,
    yFormat: (v) => `${Math.round(v)}%`,
  });
  figure.dataset.current = String(traffic.current);
  figure.append(h("p", { class: "now" }, `now: `, h("strong", { id: "traffic-now" }, `${traffic.current}%`), ` on ${target}`));
  return figure;
}

function metricCharts(metrics) {
  if (!metrics || !metrics.series || !metrics.versions.new) return h("p", { class: "empty" }, "no metrics for this release");
  const v = metrics.versions, series = metrics.series;
  const pick = (key) => [
    { name: `new v${v.new}`, color: "#d9480f", points: (series.new || {})[key] || [] },
    ...(v.old ? [{ name: `old v${v.old}`, color: "#0b5cad", points: (series.old || {})[key] || [] }] : []),
  ];
  return h("div", { class: "charts" },
    lineChart({ id: "error-chart", title: "Error rate through the alias", series: pick("error_rate"), yCap: 1,
      yFormat: (x) => `${Math.round(x * 1000) / 10}%`, emptyText: "no invocations through the alias in this window" }),
    lineChart({ id: "p99-chart", title: "p99 duration (ms)", series: pick("p99_ms"),
      yFormat: (x) => (x < 1 ? x.toFixed(2) : x < 10 ? x.toFixed(1) : `${Math.round(x)}`), emptyText: "no durations recorded in this window" }));
}

// --- pages ------------------------------------------------------------------------------------------
function crumbs(...parts) {
  const nav = document.getElementById("crumbs");
  nav.replaceChildren(...parts.flatMap((p, i) => [i ? " / " : "", p.href ? h("a", { href: p.href }, p.text) : h("span", { "aria-current": "page" }, p.text)]));
}

function fleetRow(fn) {
  const latest = fn.latest, flight = fn.in_flight;
  const attention = fn.attention.length > 0;
  return h("tr", { "data-function": fn.function, class: attention ? "attention" : "" },
    td("function", h("a", { href: `/functions/${esc(fn.function)}` }, fn.function),
      attention ? h("div", { class: "flag" }, "⚠ needs attention") : null,
      fn.frozen ? h("div", { class: "frozen" }, "❄ frozen") : null,
      attention ? h("ul", { class: "reasons" }, fn.attention.map((r) => h("li", {}, r))) : null,
      // A version live unproven is rolled back from here too, as from its function's page.
      actionButtons("function", fn.function, fn.live_unproven, { live_version: fn.live_version }, ["rollback"])),
    td("live", fn.live_version ? `${fn.alias} → v${fn.live_version}` : h("span", { class: "muted" }, "no alias yet")),
    td("latest", latest ? h("a", { class: "mono", href: `/functions/${esc(fn.function)}/releases/${esc(latest.release_id)}` }, latest.release_id) : "none"),
    td("state", latest ? stateBadge(latest.state) : "-"),
    td("in flight", flight ? [
      h("div", { class: "mono" }, flight.deployment_id),
      h("span", { class: "bar", role: "img", "aria-label": `${pct(flight.traffic_on_target)} on v${flight.target_version}` },
        h("span", { style: null })),
      `${pct(flight.traffic_on_target)} on v${flight.target_version}`,
    ] : h("span", { class: "muted" }, "-")),
    td("queued", String(fn.queued)));
}

function renderFleet(data) {
  crumbs({ text: "Fleet" });
  const main = document.getElementById("main");
  const q = state.filter.text.toLowerCase();
  const rows = data.functions.filter((f) => f.function.toLowerCase().includes(q) && (!state.filter.attention || f.attention.length));
  const search = h("input", { type: "search", id: "search", placeholder: "Search functions by name", "aria-label": "Search functions by name", value: state.filter.text,
    oninput: (e) => { state.filter.text = e.target.value; renderFleet(data); document.getElementById("search").focus(); } });
  const toggle = h("button", { type: "button", id: "attention-filter", "aria-pressed": String(state.filter.attention),
    onclick: () => { state.filter.attention = !state.filter.attention; renderFleet(data); document.getElementById("attention-filter").focus(); } },
    `Needs attention: `, h("strong", { id: "attention-count" }, String(data.attention_count)));
  const table = h("table", { class: "responsive", id: "fleet-table" },
    h("thead", {}, h("tr", {}, ["function", "live", "latest release", "state", "deployment in flight", "queued"].map((c) => h("th", { scope: "col" }, c)))),
    h("tbody", {}, rows.map(fleetRow)));
  const caret = search.value.length;
  const freezes = (data.freezes || []).length
    ? h("section", { class: "card", "aria-label": "Freezes" }, h("h2", {}, "Freezes"),
        h("ul", { class: "plain", id: "freezes" }, data.freezes.map((f) => h("li", {}, "❄ ", f.text))))
    : null;
  main.replaceChildren(h("h1", {}, `Fleet of ${data.stack}`), freezes,
    h("div", { class: "toolbar" }, search, toggle, h("span", { class: "muted" }, `${rows.length} of ${data.functions.length} functions`)),
    h("section", { class: "card" }, rows.length ? table : h("p", { class: "empty" }, data.functions.length ? "no function matches" : "no managed functions yet (rollout register FUNCTION)")));
  search.setSelectionRange(caret, caret);
  main.querySelectorAll("tr[data-function] .bar > span").forEach((bar, i) => {
    bar.style.width = pct(rows.filter((r) => r.in_flight)[i].in_flight.traffic_on_target);
  });
}

function releaseRow(fn, r) {
  const took = r.when;
  return h("tr", { "data-release": r.release_id },
    td("release", h("a", { class: "mono", href: `/functions/${esc(fn)}/releases/${esc(r.release_id)}` }, r.release_id)),
    td("state", stateBadge(r.state)),
    td("versions", r.versions),
    td("deployment", h("span", { class: "mono id" }, r.deployment_id || "-")),
    td("received (took)", took),
    td("commit", h("span", { class: "mono" }, (r.commit || "-").slice(0, 12)), r.author ? h("div", { class: "muted" }, r.author) : null),
    td("message", r.message || "-"),
    td("why", r.why));
}

function renderFunction(data) {
  crumbs({ text: "Fleet", href: "/" }, { text: data.function });
  const main = document.getElementById("main");
  const facts = h("dl", { class: "facts" },
    h("dt", {}, "alias"), h("dd", {}, data.live_version ? `${data.alias} → v${data.live_version}` : "none yet"),
    h("dt", {}, "lock"), h("dd", {}, data.lock ? `held by ${data.lock.release_id} ${data.lock.deployment_id || ""}` : "free"),
    h("dt", {}, "queued"), h("dd", {}, String(data.queued)));
  main.replaceChildren(h("h1", {}, data.function),
    data.attention.length ? h("section", { class: "card attention", "aria-label": "Needs attention" }, h("div", { class: "flag" }, "⚠ needs attention"), h("ul", { class: "reasons" }, data.attention.map((r) => h("li", {}, r)))) : null,
    card("Now", facts, actionButtons("function", data.function, true, { live_version: data.live_version })),
    card(`Releases (${data.releases.length})`, data.releases.length ? h("table", { class: "responsive", id: "releases-table" },
      h("thead", {}, h("tr", {}, ["release", "state", "versions", "deployment", "received (took)", "commit", "message", "why"].map((c) => h("th", { scope: "col" }, c)))),
      h("tbody", {}, data.releases.map((r) => releaseRow(data.function, r)))) : h("p", { class: "empty" }, "no releases yet")));
}

function checksSection(hooks) {
  if (!hooks.length) return h("p", { class: "empty" }, "no hook has reported yet");
  return hooks.map((hook) => h("div", { class: "hook", "data-hook": hook.hook },
    h("h3", {}, `${hook.hook} hook: `, stateBadge(hook.verdict), " ", h("span", { class: "muted" }, hook.reason)),
    hook.checks.map((c) => h("div", { class: "check", "data-check": c.name, "data-verdict": c.verdict },
      h("strong", {}, c.name), " ", stateBadge(c.verdict), c.duration_ms !== null && c.duration_ms !== undefined ? h("span", { class: "muted" }, ` ${c.duration_ms} ms`) : null,
      c.detail ? h("pre", { class: "excerpt" }, c.detail) : null)),
    hook.canary ? canaryBlock(hook.canary) : null,
    hook.warnings.filter((w) => !(hook.canary && (hook.canary.warnings || []).includes(w)))
      .map((w) => h("p", { class: "flag" }, `warning: ${w}`))));
}

function canaryBlock(canary) {
  const row = (label, f) => f ? h("tr", {}, td("version", `${label} v${f.version}`), td("invocations", String(f.invocations)),
    td("errors", `${f.errors} (${pct(f.error_rate || 0)})`), td("p99", f.p99_duration_ms === null ? "-" : `${Math.round(f.p99_duration_ms)} ms`)) : null;
  return h("div", { class: "canary", id: "canary", "data-verdict": canary.verdict || "" },
    h("h3", {}, "Canary verdict: ", stateBadge(canary.verdict || "-")),
    h("table", { class: "responsive" }, h("thead", {}, h("tr", {}, ["version", "invocations", "errors", "p99"].map((c) => h("th", {}, c)))),
      h("tbody", {}, row("new", canary.new), row("old", canary.old))),
    (canary.failures || []).map((f) => h("p", { class: "flag" }, f)),
    (canary.warnings || []).map((w) => h("p", { class: "flag" }, `warning: ${w}`)));
}

function lifecycleTable(dep) {
  return h("table", { class: "responsive", id: "lifecycle" },
    h("thead", {}, h("tr", {}, ["event", "status", "started", "ended", "message"].map((c) => h("th", { scope: "col" }, c)))),
    h("tbody", {}, dep.lifecycle.map((e) => h("tr", { "data-event": e.name },
      td("event", e.name), td("status", stateBadge(e.status)), td("started", shortTime(e.started)), td("ended", shortTime(e.ended)), td("message", e.message || "")))));
}

function renderRelease(data) {
  const r = data.release, dep = data.deployment;
  crumbs({ text: "Fleet", href: "/" }, { text: r.function, href: `/functions/${esc(r.function)}` }, { text: r.release_id });
  const facts = h("dl", { class: "facts" },
    h("dt", {}, "state"), h("dd", { id: "release-state" }, stateBadge(r.state), " ", r.why),
    h("dt", {}, "reason code"), h("dd", { id: "reason-code", class: "mono" }, r.reason_code || "-"),
    h("dt", {}, "versions"), h("dd", {}, r.versions),
    h("dt", {}, "deployment"), h("dd", { class: "mono" }, r.deployment_id || "-", dep ? ` (${dep.status}, ${dep.config})` : ""),
    h("dt", {}, "commit"), h("dd", { class: "mono" }, r.commit || "-"),
    h("dt", {}, "author"), h("dd", {}, r.author || "-"),
    h("dt", {}, "message"), h("dd", {}, r.message || "-"),
    h("dt", {}, "received (took)"), h("dd", {}, r.when),
    h("dt", {}, "artifact"), h("dd", { class: "mono" }, `s3://${r.bucket}/${r.key}`));
  const running = dep && !dep.done;
  const main = document.getElementById("main");
  main.replaceChildren(h("h1", {}, `${r.function} release `, h("span", { class: "mono" }, r.release_id)),
    card("Release", facts, running ? actionButtons("deployment", dep.deployment_id, true) : null,
      running && r.approval && r.approval.status === "AWAITING" ? actionButtons("gate", dep.deployment_id, true) : null,
      dep ? h("p", { id: "outcome" }, "deployment: ", dep.outcome) : null),
    dep ? card("Traffic", trafficChart(data.traffic, dep)) : null,
    dep ? card("New against old version", metricCharts(data.metrics)) : null,
    card("Checks", h("div", { id: "checks" }, checksSection(data.checks))),
    dep ? card("Lifecycle events", lifecycleTable(dep)) : null,
    card("Notifications sent", data.notifications.length ? h("ul", { class: "plain", id: "notifications" }, data.notifications.map((n) =>
      h("li", { "data-kind": n.kind }, h("span", { class: "mono" }, n.kind), ` (${n.severity}) `, n.subject, h("span", { class: "muted" }, ` ${shortTime(n.at)}`)))) : h("p", { class: "empty" }, "none")),
    card("History", h("ul", { class: "plain", id: "history" }, r.history.map((e) => h("li", {}, stateBadge(e.state), ` ${shortTime(e.at)} `, h("span", { class: "muted" }, e.reason || e.reason_code || ""))))));
}

// --- routing and live refresh -----------------------------------------------------------------------
function route() {
  const parts = location.pathname.split("/").filter(Boolean).map(decodeURIComponent);
  if (parts[0] === "functions" && parts[2] === "releases" && parts[3]) {
    return { api: `/api/functions/${esc(parts[1])}/releases/${esc(parts[3])}`, render: renderRelease };
  }
  if (parts[0] === "functions" && parts[1]) return { api: `/api/functions/${esc(parts[1])}`, render: renderFunction };
  return { api: "/api/fleet", render: renderFleet };
}

function focusKey(el) {
  if (!el || el === document.body) return null;
  const within = el.closest("[id]");
  return { id: el.id, href: el.getAttribute("href"), action: el.dataset && el.dataset.action, tag: el.tagName,
    within: within ? within.id : "" };
}
function restoreFocus(key) {
  if (!key) return;
  let el = key.id ? document.getElementById(key.id) : null;
  if (!el && key.href) el = document.querySelector(`main ${key.tag.toLowerCase()}[href="${CSS.escape(key.href)}"]`);
  if (!el && key.action) el = document.querySelector(`main [data-action="${CSS.escape(key.action)}"]`);
  if (!el && key.tag === "SUMMARY" && key.within) el = document.querySelector(`#${CSS.escape(key.within)} summary`);
  if (el) el.focus();
}

async function refresh() {
  if (state.busy || document.getElementById("confirm").open) return;
  state.busy = true;
  const live = document.getElementById("live");
  const page = route();
  try {
    const data = await getJSON(page.api);
    const text = JSON.stringify(data);
    if (text !== state.last) {  // redraw only what changed, keeping the keyboard's place
      state.last = text;
      const key = focusKey(document.activeElement);
      const opened = [...document.querySelectorAll("main details[open]")].map((d) => d.closest("[id]").id);
      page.render(data);
      opened.forEach((id) => { const d = document.querySelector(`#${CSS.escape(id)} details`); if (d) d.open = true; });
      restoreFocus(key);
    }
    live.textContent = `updated ${new Date().toLocaleTimeString()}`;
    live.className = "live";
  } catch (err) {
    live.textContent = `not updated: ${err.message}`;
    live.className = "live stale";
    if (!document.getElementById("main").childElementCount) {
      document.getElementById("main").replaceChildren(h("p", { class: "flag", role: "alert" }, err.message));
    }
  } finally {
    state.busy = false;
  }
}

async function start() {
  try {
    state.session = await getJSON("/api/session");
    document.title = `Rollout: ${state.session.stack}`;
  } catch (err) {
    state.session = { actions: [] };
  }
  await refresh();
  state.timer = setInterval(refresh, REFRESH_MS);
}
start();
