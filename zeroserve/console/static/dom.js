// Building DOM nodes without innerHTML: every text from the API goes in as a text node, never as markup.

const SVG_NS = "http://www.w3.org/2000/svg";

function build(node, attrs, children) {
  for (const [key, value] of Object.entries(attrs || {})) {
    if (value === undefined || value === null || value === false) continue;
    if (key.startsWith("on") && typeof value === "function") node.addEventListener(key.slice(2), value);
    else if (key === "text") node.textContent = value;
    else node.setAttribute(key, value === true ? "" : String(value));
  }
  for (const child of children.flat()) {
    if (child === undefined || child === null || child === false) continue;
    node.append(child instanceof Node ? child : document.createTextNode(String(child)));
  }
  return node;
}

export const h = (tag, attrs, ...children) => build(document.createElement(tag), attrs, children);
export const svg = (tag, attrs, ...children) => build(document.createElementNS(SVG_NS, tag), attrs, children);

export function when(seconds) {
  return new Date(seconds * 1000).toLocaleString(undefined, { hour12: false });
}

export function clock(seconds) {
  return new Date(seconds * 1000).toLocaleTimeString(undefined, { hour12: false });
}

export function rate(value) {
  if (value === null || value === undefined) return "–";
  return value >= 100 ? value.toFixed(0) : value >= 10 ? value.toFixed(1) : value.toFixed(2);
}

// A read-only code block with a button that copies it.
export function copyable(label, code) {
  const pre = h("pre", { class: "code", tabindex: "0", "aria-label": label }, h("code", {}, code));
  const note = h("span", { class: "copied", role: "status" });
  const button = h("button", {
    type: "button", class: "small",
    onclick: async () => {
      try {
        await navigator.clipboard.writeText(code);
        note.textContent = "copied";
      } catch {
        getSelection().selectAllChildren(pre);  // no clipboard access: leave it selected for Ctrl+C
        note.textContent = "selected: press Ctrl+C";
      }
    },
  }, `Copy ${label}`);
  return h("div", { class: "copyable" }, pre, h("div", {}, button, " ", note));
}
