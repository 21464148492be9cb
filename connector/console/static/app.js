// The console page: alerts, one alert's container, manual actions, and the
// playbook editor (editor.js). Hash routes: #/alerts, #/alert/<id>,
// #/actions[/<name>], #/editor[/<key>].
import { api, cell, clear, copyButton, debounce, el, followJob, session, severityBadge, visible } from "./util.js";
import { showEditor } from "./editor.js";

const main = document.getElementById("main");
let stopPolling = () => {};
let manifest = null;

function setBanner(text) {
  const banner = document.getElementById("banner");
  banner.textContent = visible(text || "");
}

async function getManifest() {
  if (!manifest) {
    const { data } = await api("GET", "manifest");
    manifest = data;
  }
  return manifest;
}

function poll(fn, ms) {
  let alive = true;
  let timer = null;
  const tick = async () => {
    if (!alive) return;
    try { await fn(); } finally { if (alive) timer = setTimeout(tick, ms); }
  };
  timer = setTimeout(tick, ms);
  return () => { alive = false; clearTimeout(timer); };
}

// -- alerts -------------------------------------------------------------------

const SEVERITY_RANK = { high: 3, medium: 2, low: 1, informational: 0 };
const VERDICT_ORDER = ["malware", "pua", "invalid_certificate", "unsigned", "rare", "unknown_prevalence", "no findings"];
const VERDICT_CLASS = { malware: "high", pua: "medium", invalid_certificate: "medium", unsigned: "low", rare: "low" };
const listState = { text: "", severity: "", status: "", sort: "time-desc" };

function verdictChips(counts) {
  const keys = Object.keys(counts || {}).sort((a, b) => VERDICT_ORDER.indexOf(a) - VERDICT_ORDER.indexOf(b));
  return el("span", { class: "chips" }, keys.map((k) =>
    el("span", { class: `chip v-${VERDICT_CLASS[k] || "none"}`, dataset: { verdict: k }, text: `${k} ${counts[k]}` })));
}

async function showAlerts() {
  const filters = el("div", { class: "filters" },
    el("input", { id: "filter-text", type: "search", placeholder: "Filter by id, title or tag", value: listState.text }),
    el("select", { id: "filter-severity" }, ["", "high", "medium", "low", "informational"].map((s) =>
      el("option", { value: s, selected: s === listState.severity, text: s || "any severity" }))),
    el("select", { id: "filter-status" }, ["", "new", "inProgress", "resolved"].map((s) =>
      el("option", { value: s, selected: s === listState.status, text: s || "any status" }))),
    el("select", { id: "sort" }, [["time-desc", "newest first"], ["time-asc", "oldest first"],
      ["severity", "severity"], ["files", "most files"]].map(([v, t]) =>
      el("option", { value: v, selected: v === listState.sort, text: t }))),
    el("span", { id: "alert-count", class: "muted" }));
  const body = el("tbody", { id: "alerts-body" });
  const table = el("table", { class: "grid", id: "alerts" },
    el("thead", {}, el("tr", {}, ["Alert", "Severity", "Status", "Verdicts", "Files", "Tags", "Created", "Title"]
      .map((h) => el("th", { text: h })))), body);
  clear(main).append(el("h1", { text: "Alerts" }), filters, table);

  let items = [];
  let last = "";
  const render = () => {
    if (!body.isConnected) return; // the page changed while an answer was on its way
    const text = listState.text.toLowerCase();
    let rows = items.filter((c) => (!listState.severity || c.severity === listState.severity)
      && (!listState.status || c.status === listState.status)
      && (!text || [c.alert_id, c.name, ...(c.tags || [])].some((v) => String(v).toLowerCase().includes(text))));
    const by = {
      "time-desc": (a, b) => String(b.created_at).localeCompare(String(a.created_at)),
      "time-asc": (a, b) => String(a.created_at).localeCompare(String(b.created_at)),
      severity: (a, b) => (SEVERITY_RANK[b.severity] || 0) - (SEVERITY_RANK[a.severity] || 0),
      files: (a, b) => (b.artifact_count || 0) - (a.artifact_count || 0),
    }[listState.sort];
    rows = rows.slice().sort(by);
    clear(body).append(...rows.map((c) => el("tr", { class: "link", dataset: { alertId: c.alert_id },
      on: { click: () => { location.hash = `#/alert/${encodeURIComponent(c.alert_id)}`; } } },
      el("td", { class: "mono", text: c.alert_id }), el("td", {}, severityBadge(c.severity)),
      el("td", { text: c.status }), el("td", {}, verdictChips(c.verdicts)),
      el("td", { class: "num", text: c.artifact_count }), el("td", { text: (c.tags || []).join(", ") }),
      el("td", { class: "mono", text: c.created_at }), el("td", { class: "title", text: c.name }))));
    document.getElementById("alert-count").textContent = `${rows.length} of ${items.length} alerts`;
  };
  const load = async () => {
    const { status, data } = await api("GET", `containers?since=${encodeURIComponent(last)}`);
    if (status !== 200) { setBanner(data.error); return; }
    if (data.unchanged) return;
    last = data.version;
    items = data.containers;
    render();
  };
  for (const [id, key] of [["filter-text", "text"], ["filter-severity", "severity"], ["filter-status", "status"], ["sort", "sort"]]) {
    document.getElementById(id).addEventListener("input", (ev) => { listState[key] = ev.target.value; render(); });
  }
  await load();
  stopPolling = poll(load, 1500);
}

// -- one alert ----------------------------------------------------------------

function fileCard(a) {
  const cef = a.cef || {};
  const hash = (label, value) => value ? el("div", { class: "hash" },
    el("span", { class: "k", text: label }), el("code", { class: "mono", dataset: { hash: label }, text: value }),
    copyButton(value, label)) : null;
  const cert = cef.isValidCertificate === undefined ? "-" : (cef.isValidCertificate ? "valid" : "invalid");
  return el("div", { class: `file sevline-${a.severity}`, dataset: { sdi: a.source_data_identifier } },
    el("div", { class: "file-head" }, severityBadge(a.severity),
      el("span", { class: `verdict v-${VERDICT_CLASS[(a.tags || [])[0]] || "none"}`, text: a.verdict || "-" }),
      el("span", { class: "file-name", text: a.name })),
    hash("SHA-1", cef.fileHashSha1), hash("SHA-256", cef.fileHashSha256), hash("MD5", cef.fileHashMd5),
    el("dl", { class: "facts" }, [
      ["Signer", cef.signer], ["Issuer", cef.issuer], ["Certificate", cert], ["Signer hash", cef.signerHash],
      ["Prevalence", cef.globalPrevalence], ["Determination",
        [cef.determinationType, cef.determinationValue].filter((v) => v).join(": ")],
      ["Size", cef.fileSize], ["Publisher", cef.filePublisher], ["Type", cef.fileType],
    ].map(([k, v]) => [el("dt", { text: k }), el("dd", { dataset: { field: k }, text: cell(v) })]).flat()));
}

function runCard(run) {
  return el("div", { class: "run" },
    el("div", {}, el("strong", { text: run.playbook }), " ", el("span", { class: `status st-${run.status}`, text: run.status }),
      el("span", { class: "muted", text: ` ${run.trigger || ""} ${run.started_at || ""}` })),
    el("div", { class: "muted", text: run.message || "" }),
    el("table", { class: "grid small" }, el("tbody", {}, (run.steps || []).map((s) => el("tr", {},
      el("td", { class: "mono", text: s.id }), el("td", { text: s.action || s.type }),
      el("td", {}, el("span", { class: `status st-${s.status}`, text: s.status })),
      el("td", { class: "num", text: s.duration_ms !== undefined ? `${s.duration_ms} ms` : "" }),
      el("td", { text: s.message }))))));
}

function jobView(job) {
  const box = el("div", { class: "job", dataset: { status: job.status } });
  box.append(el("div", {}, el("strong", { text: `${job.kind} ${job.name}: ` }),
    el("span", { class: `status st-${job.status}`, text: job.status })));
  if (job.steps && job.steps.length) {
    box.append(el("ol", { class: "steps" }, job.steps.map((s) =>
      el("li", { dataset: { step: s.id, status: s.status } }, el("span", { class: "mono", text: s.id }), " ",
        el("span", { class: `status st-${s.status}`, text: s.status })))));
  }
  if (job.progress && job.progress.length && job.status === "running") {
    box.append(el("div", { class: "muted", text: job.progress[job.progress.length - 1] }));
  }
  if (job.result) {
    box.append(el("div", { class: "job-message", text: job.result.message || "" }));
    if (job.result.summary) box.append(el("div", { class: "muted", text: "Summary: " + Object.entries(job.result.summary).map(([k, v]) => `${k}=${cell(v)}`).join(", ") }));
  }
  return box;
}

async function showAlert(alertId) {
  const head = el("div", { id: "alert-head" });
  const actions = el("div", { class: "toolbar" });
  const jobBox = el("div", { id: "job" });
  const details = el("div", { id: "alert-details" });
  clear(main).append(el("p", {}, el("a", { href: "#/alerts", text: "← Alerts" })), head, actions, jobBox, details);

  const getFiles = el("button", { id: "get-files", type: "button", text: "Get related files",
    disabled: !session.actionsEnabled, title: session.configProblem || "" });
  const pbSelect = el("select", { id: "run-playbook-select" });
  const runPb = el("button", { id: "run-playbook", type: "button", text: "Run playbook", disabled: !session.actionsEnabled });
  actions.append(getFiles, el("span", { class: "sep" }), pbSelect, runPb);
  api("GET", "playbooks").then(({ data }) => {
    for (const p of data.playbooks || []) pbSelect.append(el("option", { value: p.key, text: `${p.name || p.file} (${p.source})` }));
  });
  const follow = (reply) => {
    if (reply.status !== 202) { clear(jobBox).append(el("div", { class: "error", text: reply.data.error })); return; }
    followJob(reply.data.job, (job) => { clear(jobBox).append(jobView(job)); if (job.status !== "running") load(true); });
  };
  getFiles.addEventListener("click", async () => follow(await api("POST", "actions/get_alert_related_files/run", { params: { alert_id: alertId } })));
  runPb.addEventListener("click", async () => follow(await api("POST", "playbooks/run", { key: pbSelect.value, alert_id: alertId })));

  let last = "";
  const load = async (force) => {
    const since = force ? "" : last;
    const { status, data } = await api("GET", `containers/${encodeURIComponent(alertId)}?since=${encodeURIComponent(since)}`);
    if (!head.isConnected) return;
    if (status !== 200) { clear(head).append(el("h1", { text: alertId }), el("p", { class: "error", text: data.error })); return; }
    if (data.unchanged) return;
    last = data.version;
    const c = data.container;
    clear(head).append(el("h1", { id: "alert-title", text: c.name }),
      el("div", { class: "meta" }, severityBadge(c.severity), el("span", { text: ` ${c.status} · ` }),
        el("span", { class: "mono", text: c.alert_id }), el("span", { text: ` · ${c.source} · created ${c.created_at}` }),
        el("span", { class: "chips" }, (c.tags || []).map((t) => el("span", { class: "chip tag", text: t })))));
    const fields = Object.entries(c.data || {}).filter(([, v]) => v !== null && v !== "" && !(Array.isArray(v) && !v.length));
    clear(details).append(
      el("h2", { text: `Files (${data.artifact_total})` }),
      data.artifact_total > data.artifacts.length ? el("p", { class: "muted", id: "files-more",
        text: `Showing the first ${data.artifacts.length}; 'mde-connector artifacts list --alert-id ${c.alert_id}' lists them all.` }) : null,
      el("div", { id: "files", class: "files" }, data.artifacts.map(fileCard)),
      el("h2", { text: "Notes" }),
      el("ul", { id: "notes" }, (c.notes || []).map((n) => el("li", { lines: n }))),
      el("h2", { text: "Playbook runs" }),
      el("div", { id: "runs" }, data.runs.map(runCard)),
      el("h2", { text: "Action runs" }),
      el("table", { class: "grid small", id: "action-runs" }, el("tbody", {}, data.action_runs.map((r) => el("tr", {},
        el("td", { text: r.action }), el("td", {}, el("span", { class: `status st-${r.status}`, text: r.status })),
        el("td", { class: "mono", text: r.started_at }), el("td", { class: "num", text: `${Math.round(r.duration_ms)} ms` }),
        el("td", { text: r.message }))))),
      el("h2", { text: "Alert fields" }),
      el("dl", { class: "facts", id: "alert-fields" }, fields.map(([k, v]) => [el("dt", { text: k }),
        el("dd", { text: cell(v) })]).flat()));
  };
  await load();
  stopPolling = poll(load, 2000);
}

// -- actions --------------------------------------------------------------------

function inputFor(name, prop, required) {
  const types = Array.isArray(prop.type) ? prop.type : [prop.type];
  const attrs = { id: `param-${name}`, name, "aria-label": name };
  let input;
  if (prop.enum) {
    input = el("select", attrs, [required ? null : el("option", { value: "", text: "" }),
      ...prop.enum.map((v) => el("option", { value: String(v), text: String(v) }))]);
  } else if (types.includes("boolean")) {
    input = el("select", attrs, ["", "true", "false"].map((v) => el("option", { value: v, text: v || "(not set)" })));
  } else {
    input = el("input", { ...attrs, type: "text", placeholder: (prop.examples || [])[0] ?? "" });
  }
  return input;
}

async function showActions(selected, preset) {
  const m = await getManifest();
  const list = el("ul", { class: "action-list" }, m.actions.map((a) => el("li", {},
    el("a", { href: `#/actions/${encodeURIComponent(a.name)}`, class: a.name === selected ? "active" : "", text: a.display_name }))));
  const pane = el("div", { class: "action-pane" });
  clear(main).append(el("h1", { text: "Actions" }), el("div", { class: "split" }, list, pane));
  const spec = m.actions.find((a) => a.name === selected) || m.actions[0];
  if (!spec) return;
  const props = spec.parameters.properties || {};
  const required = new Set(spec.parameters.required || []);
  const form = el("form", { id: "action-form", novalidate: true });
  const message = el("div", { id: "form-message", class: "form-message", role: "status" });
  const result = el("div", { id: "action-result" });
  for (const [name, prop] of Object.entries(props)) {
    const input = inputFor(name, prop, required.has(name));
    if (preset && preset[name] !== undefined) input.value = preset[name];
    form.append(el("label", { for: `param-${name}` }, el("span", { class: "mono", text: name }),
      required.has(name) ? el("span", { class: "req", text: " required" }) : el("span", { class: "muted", text: " optional" }),
      prop.contains ? el("span", { class: "muted", text: ` · contains ${prop.contains.join(", ")}` }) : null),
    input, el("p", { class: "help", text: prop.description || prop.title || "" }));
  }
  if (!Object.keys(props).length) form.append(el("p", { class: "muted", text: "This action takes no parameters." }));
  const run = el("button", { type: "submit", id: "run-action", text: `Run ${spec.display_name}`, disabled: !session.actionsEnabled });
  form.append(run, session.actionsEnabled ? null : el("p", { class: "muted", text: session.configProblem }));
  pane.append(el("h2", { text: spec.display_name }), el("p", { class: "muted", text: spec.description }), form, message, result);
  const values = () => Object.fromEntries(Object.keys(props).map((n) => [n, form.elements[n].value]));
  const check = debounce(async () => {
    const { status, data } = await api("POST", `actions/${encodeURIComponent(spec.name)}/validate`, { params: values() });
    message.className = status === 200 ? "form-message ok" : "form-message error";
    message.textContent = visible(status === 200 ? "Ready to run." : data.error);
  }, 250);
  form.addEventListener("input", check);
  form.addEventListener("submit", async (ev) => {
    ev.preventDefault();
    const reply = await api("POST", `actions/${encodeURIComponent(spec.name)}/run`, { params: values() });
    if (reply.status !== 202) {
      message.className = "form-message error";
      message.textContent = visible(reply.data.error);
      return;
    }
    message.className = "form-message";
    message.textContent = "";
    followJob(reply.data.job, (job) => {
      clear(result).append(jobView(job));
      if (job.status !== "running" && job.result) {
        result.append(el("pre", { class: "json", id: "result-json", text: JSON.stringify(job.result, null, 2) }));
      }
    });
  });
}

// -- routing --------------------------------------------------------------------

async function route() {
  stopPolling();
  stopPolling = () => {};
  const hash = location.hash.replace(/^#\/?/, "");
  const [page, ...rest] = hash.split("/");
  const arg = rest.length ? decodeURIComponent(rest.join("/")) : null;
  for (const a of document.querySelectorAll("nav a")) a.classList.toggle("active", a.dataset.nav === (page || "alerts"));
  if (page === "alert" && arg) return showAlert(arg);
  if (page === "actions") return showActions(arg);
  if (page === "editor") {
    const m = await getManifest();
    stopPolling = await showEditor(main, m, arg);
    return;
  }
  return showAlerts();
}

async function start() {
  const { status, data } = await api("GET", "session");
  if (status !== 200) {
    clear(main).append(el("p", { class: "error", text: data.error }));
    return;
  }
  session.csrf = data.csrf;
  session.actionsEnabled = data.actions_enabled;
  session.configProblem = data.config_problem;
  if (!data.actions_enabled) setBanner(data.config_problem);
  window.addEventListener("hashchange", route);
  route();
}

start();
