// A route as a bar (one segment per target, width = percent) and a function's state from its scale status.

import { h } from "./dom.js";

const PALETTE = 6;  // app.css: .seg-0 ... .seg-5, colours that keep white text readable (contrast >= 4.5)

export function targetName(target) {
  return target.latest ? "@latest" : target.revision;
}

export function trafficBar(traffic) {
  const targets = (traffic && traffic.targets) || [];
  const routed = targets.filter((t) => t.percent > 0);
  const summary = routed.map((t) => `${targetName(t)} ${t.percent}%`).join(", ") || "no traffic";
  const bar = h("div", { class: "bar", role: "img", "aria-label": `traffic: ${summary}`, "data-split": summary });
  routed.forEach((target, index) => {
    const segment = h("span", {
      class: `seg seg-${index % PALETTE}`, title: `${targetName(target)}: ${target.percent}%`,
      "data-revision": targetName(target), "data-percent": target.percent,
    }, `${targetName(target)} ${target.percent}%`);
    segment.style.width = `${target.percent}%`;  // CSSOM, which the CSP allows (style attributes it would not)
    bar.append(segment);
  });
  // The same split in words under the bar: a 10 % segment has no room for its name.
  const legend = h("div", { class: "bar-legend", "aria-hidden": "true" }, summary.replaceAll(", ", " · "));
  return h("div", { class: "split" }, bar, legend);
}

// ready | starting | at zero | failing, from GET /functions/{fn}/status; failing: a routed revision has an
// error (a replica that could not start or died) and no ready replica.
export function functionState(status) {
  const revisions = (status && status.revisions) || [];
  const ready = revisions.reduce((sum, r) => sum + r.ready, 0);
  const desired = revisions.reduce((sum, r) => sum + r.desired, 0);
  const panicking = revisions.some((r) => r.panicking);
  const failing = revisions.some((r) => r.percent > 0 && r.last_error && r.ready === 0);
  const label = failing ? "failing" : ready > 0 ? "ready" : desired > 0 ? "starting" : "at zero";
  return { label, ready, desired, panicking };
}

export function stateBadge(state) {
  return h("span", { class: `badge state-${state.label.replace(" ", "-")}` }, state.label,
    state.panicking ? " · panic" : "");
}
