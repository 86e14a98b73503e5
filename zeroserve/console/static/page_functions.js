// The functions list: name, URL, latest revision, traffic bar, replicas, requests/s, state; refreshed every 2 s.

import { apiGet, fn } from "./api.js";
import { h, rate } from "./dom.js";
import { functionState, stateBadge, trafficBar } from "./traffic.js";

export const REFRESH_MS = 2000;

async function row(item) {
  const [status, history] = await Promise.all([
    apiGet(`${fn(item.name)}/status`).catch(() => null),
    apiGet(`${fn(item.name)}/history?limit=1`).catch(() => null),
  ]);
  const state = functionState(status);
  const points = (history && history.points) || [];
  const latest = points[points.length - 1];
  return h("tr", { "data-function": item.name },
    h("th", { scope: "row" }, h("a", { href: `#/functions/${encodeURIComponent(item.name)}` }, item.name)),
    h("td", { class: "url" }, h("a", { href: item.url, rel: "noreferrer" }, item.url)),
    h("td", {}, item.latest_revision || "–"),
    h("td", { class: "traffic" }, trafficBar(item.traffic)),
    h("td", { class: "num", "data-replicas": `${state.ready}/${state.desired}` }, `${state.ready}/${state.desired}`),
    h("td", { class: "num" }, latest ? rate(latest.requests_per_second) : "–"),
    h("td", {}, stateBadge(state)));
}

export async function renderFunctions(view, live) {
  const body = h("tbody", {});
  const empty = h("p", { hidden: true },
    "No functions yet: deploy one with ", h("code", {}, "zeroserve deploy DIR"), " or a git push.");
  view.replaceChildren(h("h1", {}, "Functions"), empty,
    h("div", { class: "scroll" }, h("table", { class: "functions" },
      h("caption", { class: "visually-hidden" }, "Functions"),
      h("thead", {}, h("tr", {},
        ...["Name", "URL", "Latest revision", "Traffic", "Ready/desired", "Requests/s", "State"]
          .map((title) => h("th", { scope: "col" }, title)))),
      body)));
  async function refresh() {
    const functions = await apiGet("/functions");
    const rows = await Promise.all(functions.map(row));
    // Keyboard users keep their place: the link that had focus gets it back in the new rows.
    const focused = body.contains(document.activeElement) ? document.activeElement.getAttribute("href") : null;
    body.replaceChildren(...rows);
    if (focused) [...body.querySelectorAll("a")].find((a) => a.getAttribute("href") === focused)?.focus();
    empty.hidden = functions.length > 0;
    live();
  }
  await refresh();
  return refresh;
}
