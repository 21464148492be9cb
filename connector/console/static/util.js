// Shared helpers: the API client, safe DOM building and visible text.
// Text from the API is only ever set with textContent (never innerHTML), and
// characters that could hide or reorder text (controls, bidi overrides, lone
// surrogates) are shown as visible escapes, as the CLI does.

export const session = { csrf: null, actionsEnabled: false, configProblem: null };

const INVISIBLE = /[\u0000-\u001f\u007f-\u009f\u200b-\u200f\u202a-\u202e\u2028\u2029\u2066-\u2069\ufeff]|[\ud800-\udbff](?![\udc00-\udfff])|(?<![\ud800-\udbff])[\udc00-\udfff]/g;

function escapeChar(c) {
  const code = c.charCodeAt(0);
  if (c === "\n") return "\\n";
  if (c === "\t") return "\\t";
  if (c === "\r") return "\\r";
  if (code < 0x100) return "\\x" + code.toString(16).padStart(2, "0");
  return "\\u" + code.toString(16).padStart(4, "0");
}

/** The text as a user should see it: invisible characters as escapes. */
export function visible(value) {
  const text = value === null || value === undefined ? "" : String(value);
  return text.replace(INVISIBLE, escapeChar);
}

/** Like visible() but keeps line breaks (descriptions, notes). */
export function visibleLines(value) {
  return String(value ?? "").split("\n").map(visible).join("\n");
}

/**
 * Build an element. attrs: class, text, title, dataset (object), on (object of
 * listeners) or any attribute; children: nodes or strings (as visible text).
 */
export function el(tag, attrs = {}, ...children) {
  const node = document.createElement(tag);
  for (const [key, value] of Object.entries(attrs || {})) {
    if (value === undefined || value === null || value === false) continue;
    if (key === "class") node.className = value;
    else if (key === "text") node.textContent = visible(value);
    else if (key === "lines") node.textContent = visibleLines(value);
    else if (key === "dataset") Object.assign(node.dataset, value);
    else if (key === "on") for (const [ev, fn] of Object.entries(value)) node.addEventListener(ev, fn);
    else if (key === "value") node.value = value;
    else if (key === "checked" || key === "disabled" || key === "selected") node[key] = Boolean(value);
    else node.setAttribute(key, value === true ? "" : String(value));
  }
  for (const child of children.flat()) {
    if (child === null || child === undefined || child === false) continue;
    node.append(child instanceof Node ? child : document.createTextNode(visible(child)));
  }
  return node;
}

export function clear(node) {
  while (node.firstChild) node.removeChild(node.firstChild);
  return node;
}

/** Call the console API; resolves to {status, data}. */
export async function api(method, path, body) {
  const init = { method, credentials: "same-origin", headers: {} };
  if (method !== "GET") {
    init.headers["X-CSRF-Token"] = session.csrf || "";
    init.headers["Content-Type"] = "application/json";
    init.body = JSON.stringify(body ?? {});
  }
  let response;
  try {
    response = await fetch("/api/" + path, init);
  } catch (err) {
    return { status: 0, data: { error: "The console does not answer; is it still running?" } };
  }
  let data = null;
  try {
    data = await response.json();
  } catch (err) {
    data = { error: `The console answered ${response.status} without JSON.` };
  }
  return { status: response.status, data };
}

export function severityBadge(severity) {
  const s = String(severity || "informational").toLowerCase();
  return el("span", { class: `sev sev-${["high", "medium", "low"].includes(s) ? s : "informational"}`, text: s });
}

/** A value for a table cell: lists comma-separated, booleans yes/no, missing "-". */
export function cell(value) {
  if (value === null || value === undefined || value === "") return "-";
  if (typeof value === "boolean") return value ? "yes" : "no";
  if (Array.isArray(value)) return value.map(cell).join(", ");
  if (typeof value === "object") return JSON.stringify(value);
  return String(value);
}

export function copyButton(value, label) {
  const button = el("button", { class: "copy", type: "button", title: `Copy ${label}`, text: "copy" });
  button.addEventListener("click", async () => {
    try {
      await navigator.clipboard.writeText(String(value));
      button.textContent = "copied";
    } catch (err) {
      button.textContent = "select & copy";
    }
    setTimeout(() => { button.textContent = "copy"; }, 1500);
  });
  return button;
}

export function debounce(fn, ms) {
  let timer = null;
  return (...args) => {
    clearTimeout(timer);
    timer = setTimeout(() => fn(...args), ms);
  };
}

/** Poll a job until it finishes; onUpdate(job) on every answer. */
export async function followJob(job, onUpdate) {
  let current = job;
  onUpdate(current);
  while (current.status === "running") {
    await new Promise((resolve) => setTimeout(resolve, 700));
    const { status, data } = await api("GET", `jobs/${encodeURIComponent(current.id)}`);
    if (status !== 200) {
      onUpdate({ ...current, status: "failed", result: { message: data.error } });
      return;
    }
    current = data.job;
    onUpdate(current);
  }
}
