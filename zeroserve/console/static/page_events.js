// Events across the platform, newest first; new ones are fetched with ?after=<the newest id seen>.

import { apiGet } from "./api.js";
import { h, when } from "./dom.js";

const KEEP = 500;

function eventRow(e) {
  const fnCell = e.function ? h("a", { href: `#/functions/${encodeURIComponent(e.function)}` }, e.function) : "–";
  return h("tr", { "data-event": e.id, "data-kind": e.kind },
    h("td", {}, h("time", { datetime: new Date(e.time * 1000).toISOString() }, when(e.time))),
    h("td", {}, fnCell), h("td", {}, e.revision || "–"), h("td", {}, e.kind),
    h("td", { class: "message" }, e.message));
}

export async function renderEvents(view, live) {
  const body = h("tbody", {});
  view.replaceChildren(h("h1", {}, "Events"), h("p", {}, "Newest first, across every function."),
    h("div", { class: "scroll" }, h("table", { class: "events" },
      h("caption", { class: "visually-hidden" }, "Events, newest first"),
      h("thead", {}, h("tr", {}, ...["Time", "Function", "Revision", "Kind", "Message"]
        .map((t) => h("th", { scope: "col" }, t)))), body)));
  let newest = null;
  async function refresh() {
    const events = await apiGet(newest === null ? "/events?limit=200" : `/events?limit=200&after=${newest}`);
    if (events.length) newest = events[events.length - 1].id;
    body.prepend(...events.reverse().map(eventRow));
    while (body.rows.length > KEEP) body.lastElementChild.remove();
    live();
  }
  await refresh();
  return refresh;
}
