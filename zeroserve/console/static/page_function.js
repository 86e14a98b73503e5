// One function: URLs and examples, traffic (bar + form: split, tag, promote, roll back), live chart of load and
// replicas with panic shaded, scale decisions, revisions with their build logs, failed builds, logs (following).

import { apiFollow, apiGet, apiSend, fn } from "./api.js";
import { panicBands, timeChart } from "./chart.js";
import { clock, copyable, h, rate, when } from "./dom.js";
import { functionState, stateBadge, targetName, trafficBar } from "./traffic.js";

const CHART_SECONDS = 300;
const MAX_LOG_LINES = 500;

function examples(name, detail) {
  // The function's own sample.json (the one its smoke test sent) as the body; tritonclient takes a base path.
  const curl = `curl -s -d @sample.json ${detail.url}v2/models/${name}/infer`;
  const address = new URL(detail.path_url);
  const triton = [
    "import tritonclient.http as httpclient",
    "",
    `client = httpclient.InferenceServerClient("${address.host}${address.pathname.replace(/\/$/, "")}")`,
    `print(client.get_model_metadata("${name}"))  # its inputs: make InferInput objects for them, then`,
    `# result = client.infer("${name}", inputs); result.as_numpy("<output name>")`,
  ].join("\n");
  return [copyable("curl example", curl), copyable("tritonclient example", triton)];
}

function urlList(detail) {
  const items = [h("li", {}, "host: ", h("a", { href: detail.url, rel: "noreferrer" }, detail.url)),
                 h("li", {}, "path: ", h("a", { href: detail.path_url, rel: "noreferrer" }, detail.path_url))];
  for (const [tag, url] of Object.entries(detail.tags || {})) {
    items.push(h("li", { "data-tag": tag }, `tag ${tag}: `, h("a", { href: url, rel: "noreferrer" }, url)));
  }
  return h("ul", { class: "urls" }, items);
}

// The split form: one row per revision (routed or ready), percent and tag; PUT /traffic with the whole route.
function trafficForm(name, detail, onChanged) {
  const targets = (detail.traffic && detail.traffic.targets) || [];
  const rows = targets.map((t) => ({ ref: targetName(t), percent: t.percent, tag: t.tag || "" }));
  for (const r of detail.revisions) {
    if (r.status === "Ready" && !rows.some((row) => row.ref === r.name)) rows.push({ ref: r.name, percent: 0, tag: "" });
  }
  const error = h("p", { class: "error", role: "alert", id: "traffic-error" });
  const done = h("p", { class: "ok", role: "status" });
  const fields = rows.map((row, i) => h("div", { class: "target-row", "data-ref": row.ref },
    h("span", { class: "ref", id: `ref-${i}` }, row.ref),
    h("label", { for: `percent-${i}` }, "percent"),
    h("input", { id: `percent-${i}`, name: `percent-${i}`, type: "number", min: 0, max: 100, step: 1,
                 value: row.percent, inputmode: "numeric", "aria-describedby": `ref-${i}` }),
    h("label", { for: `tag-${i}` }, "tag"),
    h("input", { id: `tag-${i}`, name: `tag-${i}`, type: "text", value: row.tag, maxlength: 63,
                 spellcheck: "false", "aria-describedby": `ref-${i}` })));

  async function call(what, run) {
    error.textContent = ""; done.textContent = "";
    try {
      await run();
      done.textContent = `${what}: done`;
      await onChanged();
    } catch (exc) {
      error.textContent = `${what}: ${exc.message}`;
    }
  }

  const form = h("form", { class: "traffic-form", "aria-label": "Change the traffic split" }, fields,
    h("div", { class: "actions" }, h("button", { type: "submit" }, "Set split")), error, done);
  form.addEventListener("submit", (event) => {
    event.preventDefault();
    const body = { targets: rows.map((row, i) => {
      const percent = Number(form.elements[`percent-${i}`].value);
      const tag = form.elements[`tag-${i}`].value.trim() || null;
      const target = row.ref === "@latest" ? { latest: true } : { revision: row.ref };
      return { ...target, percent: Number.isFinite(percent) ? percent : 0, tag };
    }).filter((t) => t.percent > 0 || t.tag) };
    call("set split", () => apiSend("PUT", `${fn(name)}/traffic`, body));
  });

  const tags = rows.filter((r) => r.tag).map((r) => r.tag);
  const promoteSelect = h("select", { id: "promote-tag", name: "tag" }, tags.map((t) => h("option", { value: t }, t)));
  const promote = h("form", { class: "inline", "aria-label": "Promote a tag" },
    h("label", { for: "promote-tag" }, "Promote tag"), promoteSelect,
    h("button", { type: "submit", disabled: tags.length === 0 }, "Promote"));
  promote.addEventListener("submit", (event) => {
    event.preventDefault();
    call("promote", () => apiSend("POST", `${fn(name)}/promote`, { tag: promoteSelect.value }));
  });
  const rollback = h("button", { type: "button", id: "rollback",
    onclick: () => call("roll back", () => apiSend("POST", `${fn(name)}/rollback`)) }, "Roll back");
  return h("div", {}, form, h("div", { class: "actions" }, promote, rollback));
}

function revisionsTable(name, revisions, routed) {
  const rows = [...revisions].reverse().map((r) => {
    const log = h("pre", { class: "log", tabindex: "0", "aria-label": `build log of ${r.name}` }, "loading…");
    const details = h("details", { "data-revision": r.name }, h("summary", {}, "build log"), log);
    details.addEventListener("toggle", async () => {
      if (!details.open || details.dataset.loaded) return;
      try {
        const detail = await apiGet(`${fn(name)}/revisions/${encodeURIComponent(r.name)}`);
        log.textContent = detail.build_log.join("\n") || "(empty)";
        details.dataset.loaded = "1";
      } catch (exc) { log.textContent = exc.message; }
    });
    return h("tr", { "data-revision": r.name },
      h("th", { scope: "row" }, r.name),
      h("td", {}, h("span", { class: `badge rev-${r.status.toLowerCase()}` }, r.status)),
      h("td", { class: "num" }, `${routed[r.name] || 0}%`),
      h("td", {}, h("code", { title: r.digest }, r.digest.slice(0, 19))),
      h("td", {}, when(r.created)),
      h("td", {}, details));
  });
  return h("div", { class: "scroll" }, h("table", {},
    h("caption", { class: "visually-hidden" }, "Revisions"),
    h("thead", {}, h("tr", {}, ...["Revision", "Status", "Traffic", "Digest", "Created", "Build"]
      .map((t) => h("th", { scope: "col" }, t)))),
    h("tbody", {}, rows)));
}

// GET /functions/{fn}/failed-builds: newest first, each with its message and its (cleaned) build log.
function failedBuilds(builds) {
  if (builds.length === 0) return h("p", {}, "None.");
  return h("ul", { class: "failed-builds" }, builds.map((b) => h("li", { "data-build": b.id },
    h("details", {},
      h("summary", {}, h("time", { datetime: new Date(b.time * 1000).toISOString() }, when(b.time)), ` ${b.message}`),
      h("pre", { class: "log", tabindex: "0", "aria-label": `build log of the failed build at ${when(b.time)}` },
        b.log.length ? b.log.join("\n") : "(no build log: the deploy failed before its build started)")))));
}

function decisions(events, status) {
  const items = [];
  for (const r of (status && status.revisions) || []) {
    if (r.last_decision) {
      items.push(h("li", {}, h("strong", {}, `${r.revision} now: `),
        `${r.last_decision.applied} replicas (${r.last_decision.reason}), ${Math.round(r.last_decision.age_seconds)} s ago`));
    }
  }
  const scale = events.filter((e) => e.kind === "scale").slice(-10).reverse();
  for (const e of scale) items.push(h("li", {}, h("time", { datetime: new Date(e.time * 1000).toISOString() },
    clock(e.time)), ` ${e.message}`));
  return items.length ? h("ul", { class: "decisions" }, items) : h("p", {}, "No scale decisions yet.");
}

function chartSection(points, interval) {
  const now = Date.now() / 1000;
  // The last 5 minutes, or less while the platform has sampled less (at least a minute): no empty margin.
  const first = points.length ? points[0].time : now;
  const from = Math.max(now - CHART_SECONDS, Math.min(first, now - 60));
  const shown = points.filter((p) => p.time >= from);
  const bands = panicBands(shown, interval || 1);
  const series = (key) => shown.map((p) => [p.time, p[key]]);
  const last = shown[shown.length - 1];
  const summary = last
    ? `now: ${last.ready} ready of ${last.desired} desired, ${rate(last.requests_per_second)} requests/s, ` +
      `p95 ${last.p95_ms === null ? "–" : `${rate(last.p95_ms)} ms`}${last.panicking ? ", panicking" : ""}`
    : "no points yet (the data plane samples every second)";
  const replicas = timeChart({ label: "ready and desired replicas over the last minutes; panic shaded", from, to: now,
    bands, series: [{ name: "ready", values: series("ready"), css: "ready", step: true },
                    { name: "desired", values: series("desired"), css: "desired", step: true }] });
  replicas.setAttribute("data-ready", shown.map((p) => p.ready).join(","));
  const load = timeChart({ label: "requests per second and p95 latency over the last minutes", from, to: now, bands,
    series: [{ name: "requests/s", values: series("requests_per_second"), css: "rps" },
             { name: "p95 ms", values: series("p95_ms"), css: "p95", axis: "right", unit: " ms" }] });
  return [
    h("p", { class: "summary", id: "chart-summary" }, summary),
    h("div", { class: "charts" }, h("figure", { class: "figure" }, replicas, h("figcaption", {},
      h("span", { class: "key ready" }, "ready"), " ", h("span", { class: "key desired" }, "desired"), " ",
      h("span", { class: "key band" }, "panic"))),
    h("figure", { class: "figure" }, load, h("figcaption", {},
      h("span", { class: "key rps" }, "requests/s (left)"), " ", h("span", { class: "key p95" }, "p95 latency (right)")))),
  ];
}

export async function renderFunction(view, name, live, signal) {
  const section = (id, title, ...body) => h("section", { id, "aria-labelledby": `${id}-title` },
    h("h2", { id: `${id}-title` }, title), ...body);
  const header = h("div", { class: "title" }, h("h1", {}, name), h("span", { id: "state" }));
  const urls = h("div", {});
  const bar = h("div", { id: "traffic-bar" });
  const form = h("div", { id: "traffic-form" });
  const chart = h("div", { id: "chart" });
  const scale = h("div", { id: "decisions" });
  const revisions = h("div", { id: "revisions" });
  const failures = h("div", { id: "failed-builds" });
  const logs = h("pre", { class: "log follow", id: "logs", tabindex: "0", role: "log", "aria-label": "function logs" });
  view.replaceChildren(
    h("p", {}, h("a", { href: "#/functions" }, "← Functions")), header,
    section("scaling", "Load and replicas", chart),
    section("traffic", "Traffic", bar, form),
    section("scale-decisions", "Scale decisions", scale),
    section("revisions-section", "Revisions", revisions),
    section("failures", "Failed builds", failures),
    section("urls", "URLs and examples", urls),
    section("logs-section", "Logs (following)", logs));

  let points = [];
  let interval = 1;
  let routeShown = null;
  let revisionsShown = null;
  let failuresShown = null;
  let formShown = null;

  async function refresh(force = false) {
    const since = points.length ? points[points.length - 1].time : undefined;
    const [detail, status, history, events] = await Promise.all([
      apiGet(fn(name)), apiGet(`${fn(name)}/status`),
      apiGet(`${fn(name)}/history${since === undefined ? "" : `?since=${since}`}`),
      apiGet(`${fn(name)}/events?limit=200`),
    ]);
    points = points.concat(history.points).slice(-CHART_SECONDS - 10);
    interval = history.interval_seconds || 1;
    header.querySelector("#state").replaceChildren(stateBadge(functionState(status)));
    const routeKey = JSON.stringify(detail.traffic) + JSON.stringify(detail.revisions.map((r) => [r.name, r.status]));
    const routed = {};
    for (const t of (detail.traffic && detail.traffic.targets) || []) {
      const ref = t.latest ? detail.latest_revision : t.revision;
      routed[ref] = (routed[ref] || 0) + t.percent;
    }
    if (force || routeKey !== routeShown) {
      routeShown = routeKey;
      bar.replaceChildren(trafficBar(detail.traffic));
      urls.replaceChildren(urlList(detail), ...examples(name, detail));
    }
    // The form follows the route too, but never under the user's hands (not while it has the focus).
    if (force || (routeKey !== formShown && !form.contains(document.activeElement))) {
      formShown = routeKey;
      form.replaceChildren(trafficForm(name, detail, () => refresh(true)));
    }
    if (routeKey !== revisionsShown) {  // redrawn only on a change: a build log the user opened stays open
      revisionsShown = routeKey;
      revisions.replaceChildren(revisionsTable(name, detail.revisions, routed));
    }
    chart.replaceChildren(...chartSection(points, interval));
    scale.replaceChildren(decisions(events, status));
    // Fetched and redrawn only when a build failed anew (a new build-failed event): a log the user opened
    // stays open.
    const failuresKey = events.filter((e) => e.kind === "build-failed").map((e) => e.id).join(",");
    if (failuresKey !== failuresShown) {
      try {
        failures.replaceChildren(failedBuilds(await apiGet(`${fn(name)}/failed-builds`)));
        failuresShown = failuresKey;  // after an error, asked again at the next refresh
      } catch (exc) {
        failures.replaceChildren(h("p", { class: "error" }, `failed builds: ${exc.message}`));
      }
    }
    live();
  }

  await refresh(true);
  followLogs(name, logs, signal);
  return () => refresh();
}

function followLogs(name, pre, signal) {
  const lines = [];
  pre.textContent = "(no lines yet: what the replicas write to stdout and stderr appears here)";
  apiFollow(`${fn(name)}/logs?follow=true&tail=200`, (line) => {
    lines.push(`${clock(line.time)} ${line.replica} ${line.stream}: ${line.line}`);
    if (lines.length > MAX_LOG_LINES) lines.splice(0, lines.length - MAX_LOG_LINES);
    const atBottom = pre.scrollTop + pre.clientHeight >= pre.scrollHeight - 4;
    pre.textContent = lines.join("\n");
    if (atBottom) pre.scrollTop = pre.scrollHeight;
  }, signal).catch((exc) => {
    if (exc.name !== "AbortError") pre.textContent = `${lines.join("\n")}\n(logs stopped: ${exc.message})`;
  });
}
