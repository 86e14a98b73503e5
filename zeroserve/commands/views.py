"""Tables for people: how functions, revisions, routes and events look in a terminal."""

from __future__ import annotations

import time
from typing import Any

from rich.table import Table


def when(timestamp: float | None) -> str:
    if not timestamp:
        return "-"
    return time.strftime("%Y-%m-%d %H:%M:%S", time.localtime(timestamp))


def split_text(traffic: dict[str, Any] | None) -> str:
    return "-" if not traffic else str(traffic.get("split", "-"))


def functions_table(functions: list[dict[str, Any]]) -> Table:
    table = Table("NAME", "LATEST", "REVISIONS", "TRAFFIC", "URL", box=None, pad_edge=False)
    for f in functions:
        table.add_row(f["name"], f.get("latest_revision") or "-", str(f.get("revision_count", 0)),
                      split_text(f.get("traffic")), f.get("url", ""))
    return table


def traffic_table(targets: list[dict[str, Any]], urls: dict[str, str] | None = None) -> Table:
    table = Table("REVISION", "PERCENT", "TAG", "URL", box=None, pad_edge=False)
    for t in targets:
        ref = "@latest" if t.get("latest") else t.get("revision")
        tag = t.get("tag")
        table.add_row(str(ref), f"{t.get('percent', 0)}%", tag or "", (urls or {}).get(tag, "") if tag else "")
    return table


def revisions_table(revisions: list[dict[str, Any]], routed: dict[str, int]) -> Table:
    table = Table("REVISION", "STATUS", "TRAFFIC", "RUNTIME", "DIGEST", "CREATED", box=None, pad_edge=False)
    for r in revisions:
        share = routed.get(r["name"])
        table.add_row(r["name"], r.get("status", ""), "-" if share is None else f"{share}%",
                      str(r.get("runtime") or "-"), r.get("digest", "")[:19], when(r.get("created")))
    return table


def events_table(events: list[dict[str, Any]]) -> Table:
    table = Table("TIME", "FUNCTION", "KIND", "MESSAGE", box=None, pad_edge=False)
    for e in events:
        table.add_row(when(e.get("time")), e.get("function") or "-", e.get("kind", ""), e.get("message", ""))
    return table


def routed_shares(traffic: dict[str, Any] | None, latest: str | None) -> dict[str, int]:
    shares: dict[str, int] = {}
    for t in (traffic or {}).get("targets", []):
        name = latest if t.get("latest") else t.get("revision")
        if name:
            shares[name] = shares.get(name, 0) + int(t.get("percent", 0))
    return shares


def target_state_lines(state: dict[str, Any]) -> list[str]:
    """A target's own view of a function (`describe`): its Ready condition, URLs and what it serves."""
    name = state.get("target", "?")
    if state.get("error"):
        return [f"{name}: cannot tell: {state['error']}"]
    if name == "lambda":
        return lambda_state_lines(state)
    ready = state.get("ready")
    condition = "Ready" if ready is True else ("not ready" if ready is False else "Ready unknown")
    why = ": ".join(str(state[k]) for k in ("reason", "message") if state.get(k))
    where = f"Service {state.get('service')} in namespace {state.get('namespace')}" if state.get("namespace") else ""
    lines = [f"{name}: {condition}" + (f" ({why})" if why else "") + (f"  {where}" if where else "")]
    lines.append(f"  url:                   {state.get('url') or '-'}")
    lines.append(f"  latest ready revision: {state.get('latest_ready_revision') or '-'}")
    if state.get("latest_created_revision") not in (None, state.get("latest_ready_revision")):
        lines.append(f"  latest created:        {state['latest_created_revision']}")
    served = ", ".join(f"{t.get('revision')}={t.get('percent', 0)}" + (f" ({t['tag']})" if t.get("tag") else "")
                       for t in state.get("traffic", []))
    lines.append(f"  serving:               {served or '-'}")
    for tag, url in sorted((state.get("tag_urls") or {}).items()):
        lines.append(f"  tag {tag}: {url}")
    return lines


def lambda_state_lines(state: dict[str, Any]) -> list[str]:
    """Lambda's view (`describe`): State and LastUpdateStatus, the URL of `live`, versions, aliases, concurrency."""
    where = f"function {state.get('service')}" + (f" in {state['region']}" if state.get("region") else "")
    if state.get("reason") == "NotFound":
        return [f"lambda: not there ({state.get('message')})"]
    lines = [f"lambda: {_lambda_condition(state)}  {where}"]
    aliases = state.get("aliases") or []
    live = next((a for a in aliases if a.get("name") == "live"), None)
    lines.append(f"  url:      {state.get('url') or '-'}" + (f" ({live.get('auth_type')})" if live else ""))
    served = ", ".join(f"{t.get('revision')}={t.get('percent', 0)}" for t in state.get("traffic", []))
    lines.append(f"  serving:  {served or '-'}")
    versions = ", ".join(f"{v}={r}" for v, r in (state.get("versions") or {}).items())
    lines.append(f"  versions: {versions or '-'}")
    for alias in sorted(aliases, key=lambda a: (a.get("name") != "live", a.get("name") or "")):  # live first
        weights = "".join(f", version {v} at {w:.0%}" for v, w in (alias.get("weights") or {}).items())
        text = f"version {alias.get('version')} ({alias.get('revision') or '?'}){weights}"
        if alias.get("name") == "live":
            lines.append(f"  alias live: {text}")
        else:
            lines.append(f"  tag {alias.get('name')}: {text}  {alias.get('url') or '-'}")
    lines.extend(f"  {line}" for line in _lambda_concurrency(state))
    return lines


def lambda_status_lines(target: dict[str, Any]) -> list[str | Table]:
    """What Lambda reports (`status`) instead of replica counts: State, LastUpdateStatus, concurrency, versions."""
    lines: list[str | Table] = [f"lambda: function {target.get('service')}: {_lambda_condition(target)}"]
    if target.get("last_update_reason"):
        lines.append(f"  last update: {target['last_update_reason']}")
    lines.extend(f"  {line}" for line in _lambda_concurrency(target))
    lines.extend(f"  {note}" for note in target.get("notes") or [])
    table = Table("revision", "version", "traffic (live)", "tags", title="lambda")
    for rev in target.get("revisions", []):
        table.add_row(rev["revision"], _count(rev.get("version")), f"{rev.get('percent') or 0}%",
                      ", ".join(rev.get("tags") or []) or "-")
    if target.get("revisions"):
        lines.append(table)
    return lines


def _lambda_condition(state: dict[str, Any]) -> str:
    return f"State {state.get('state') or 'unknown'}, last update {state.get('last_update_status') or 'unknown'}"


def _lambda_concurrency(state: dict[str, Any]) -> list[str]:
    provisioned = state.get("provisioned_concurrency")
    if provisioned:
        first = (f"provisioned concurrency on live: {provisioned.get('Status')} "
                 f"({provisioned.get('RequestedProvisionedConcurrentExecutions', 0)} requested, "
                 f"{provisioned.get('AllocatedProvisionedConcurrentExecutions', 0)} allocated, "
                 f"{provisioned.get('AvailableProvisionedConcurrentExecutions', 0)} available)")
    else:
        first = "provisioned concurrency on live: none"
    reserved = state.get("reserved_concurrency")
    return [first, f"reserved concurrency: {reserved if reserved is not None else 'none (unreserved)'}"]


def target_scale_table(target: dict[str, Any]) -> Table:
    """A target's scale per revision (`status`): Knative's desired and actual replicas."""
    table = Table("revision", "ready", "desired", "actual", "reason", title=target.get("target"))
    for rev in target.get("revisions", []):
        ready = {True: "yes", False: "no"}.get(rev.get("ready"), "unknown")
        why = ": ".join(str(rev[k]) for k in ("reason", "message") if rev.get(k))
        table.add_row(rev["revision"], ready, _count(rev.get("desired")), _count(rev.get("actual")), why or "-")
    return table


def _count(value: int | None) -> str:
    return "-" if value is None else str(value)
