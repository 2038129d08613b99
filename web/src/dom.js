// Small DOM helpers (no framework). The page's Content-Security-Policy
// forbids inline style attributes: styles come from style.css classes, and
// SVG uses presentation attributes.

// h("div", {class: "x", onclick: f, "data-testid": "y"}, child, ...)
export function h(tag, attrs = {}, ...children) {
  return fill(document.createElement(tag), attrs, children);
}

const SVG_NS = "http://www.w3.org/2000/svg";
export function s(tag, attrs = {}, ...children) {
  return fill(document.createElementNS(SVG_NS, tag), attrs, children);
}

function fill(el, attrs, children) {
  for (const [k, v] of Object.entries(attrs ?? {})) {
    if (v === undefined || v === null || v === false) continue;
    if (k === "class") el.setAttribute("class", v);
    else if (k.startsWith("on") && typeof v === "function") el.addEventListener(k.slice(2), v);
    else if (k === "value") el.value = v;
    else el.setAttribute(k, v === true ? "" : String(v));
  }
  for (const c of children.flat(Infinity)) {
    if (c === null || c === undefined || c === false) continue;
    el.append(c instanceof Node ? c : String(c));
  }
  return el;
}

// Replaces the children of `el`.
export function put(el, ...children) {
  el.replaceChildren();
  fill(el, {}, children);
  return el;
}

export const hex = (n) => "0x" + BigInt(n).toString(16);

// Parses "0x7f0000000000", "4096" or "" (-> dflt) into a bigint.
export function parseNum(text, dflt = 0n) {
  const t = String(text ?? "").trim();
  if (t === "") return dflt;
  return BigInt(t);
}

export function option(value, label, selected) {
  return h("option", { value, selected: selected ? true : undefined }, label ?? value);
}
