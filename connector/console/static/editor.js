// The drag-and-drop playbook editor: plain DOM nodes on a canvas with an SVG
// layer for the depends_on edges. The document being edited is the playbook
// JSON itself: the editor changes only the fields the analyst edits (moving a
// node writes its "layout"), so a file round-trips unchanged. Every edit is
// checked by the server with the validator 'playbook validate' uses; the steps
// at fault are marked. Parameters bind to data paths the server offers, with
// the paths whose contains/type do not fit shown refused.
import { api, clear, debounce, el, followJob, session, visible } from "./util.js";

const ORIGIN = { x: 260, y: 40 }; // canvas position of layout (0, 0): shipped layouts go negative
const NODE_W = 180;
const NODE_H = 58;
const BUILTINS = ["decision", "set_severity", "add_note", "add_tag"];
const DEFAULT_PARAMS = {
  decision: () => ({ condition: true }),
  set_severity: () => ({ severity: "medium", mode: "raise" }),
  add_note: () => ({ text: "Note" }),
  add_tag: () => ({ tags: ["reviewed"] }),
};

function newDocument() {
  return { name: "new_playbook", description: "", version: "1.0.0", trigger: { type: "manual" }, steps: [] };
}

function isObject(v) {
  return v !== null && typeof v === "object" && !Array.isArray(v);
}

function renameRefs(value, from, to) {
  if (typeof value === "string") return value.split(`{{${from}.`).join(`{{${to}.`);
  if (Array.isArray(value)) return value.map((v) => renameRefs(v, from, to));
  if (isObject(value)) return Object.fromEntries(Object.entries(value).map(([k, v]) => [k, renameRefs(v, from, to)]));
  return value;
}

export async function showEditor(main, manifest, initialKey) {
  let drag = null;
  const state = { key: null, doc: newDocument(), editable: true, selected: null, problems: [], saved: "", job: null };
  const alive = { on: true };

  // -- skeleton ---------------------------------------------------------------
  const pbSelect = el("select", { id: "pb-select", "aria-label": "Playbook" });
  const nameInput = el("input", { id: "pb-name", "aria-label": "Name", placeholder: "name" });
  const versionInput = el("input", { id: "pb-version", "aria-label": "Version", size: 6 });
  const triggerSelect = el("select", { id: "pb-trigger", "aria-label": "Trigger" },
    ["manual", "new_alert"].map((t) => el("option", { value: t, text: t })));
  const descInput = el("input", { id: "pb-description", "aria-label": "Description", placeholder: "description", class: "wide" });
  const saveButton = el("button", { id: "pb-save", type: "button", text: "Save" });
  const newButton = el("button", { id: "pb-new", type: "button", text: "New" });
  const saveStatus = el("span", { id: "save-status", class: "muted", role: "status" });
  const headerFields = [pbSelect, nameInput, versionInput, triggerSelect, descInput, saveButton, newButton];
  for (const field of headerFields) field.disabled = true; // until the playbook is loaded
  const palette = el("aside", { id: "palette" });
  const edges = document.createElementNS("http://www.w3.org/2000/svg", "svg");
  edges.id = "edges";
  const canvas = el("div", { id: "canvas" }, edges);
  const canvasWrap = el("div", { id: "canvas-wrap" }, canvas);
  const inspector = el("aside", { id: "inspector" });
  const problemsBox = el("div", { id: "problems" });
  const alertSelect = el("select", { id: "run-alert", "aria-label": "Alert to run on" });
  const runButton = el("button", { id: "run-pb", type: "button", text: "Run on alert", disabled: !session.actionsEnabled });
  const runBox = el("div", { id: "run-job" });
  clear(main).append(el("div", { class: "editor" },
    el("div", { class: "ed-toolbar" }, pbSelect, newButton, nameInput, versionInput, triggerSelect, descInput, saveButton, saveStatus),
    el("div", { class: "ed-body" }, palette, canvasWrap, inspector),
    el("div", { class: "ed-bottom" },
      el("section", {}, el("h3", { text: "Problems" }), problemsBox),
      el("section", {}, el("h3", { text: "Run" }), el("div", { class: "toolbar" }, alertSelect, runButton), runBox))));

  // -- palette (filled once the first playbook is loaded, so nothing dropped early is lost) --
  function fillPalette() {
    if (palette.firstChild) return;
    palette.append(el("h3", { text: "Actions" }));
    for (const a of manifest.actions) {
      palette.append(el("div", { class: "palette-item", tabindex: 0, title: a.description,
        dataset: { kind: "action", action: a.name } }, el("strong", { text: a.display_name }), el("small", { class: "mono", text: a.name })));
    }
    palette.append(el("h3", { text: "Built-in steps" }));
    for (const type of BUILTINS) {
      palette.append(el("div", { class: "palette-item", tabindex: 0, dataset: { kind: type } }, el("strong", { text: type })));
    }
    palette.append(el("p", { class: "muted small", text: "Drag a step onto the canvas (or press Enter on it). Drag from a step's lower dot to another step to connect them." }));
  }

  // -- document helpers -------------------------------------------------------
  const steps = () => (Array.isArray(state.doc.steps) ? state.doc.steps : []);
  const stepById = (id) => steps().find((s) => s.id === id);
  const actionSpec = (name) => manifest.actions.find((a) => a.name === name);
  const builtinSpec = (type) => manifest.builtins.find((b) => b.type === type);

  function uniqueId(base) {
    const clean = String(base).replace(/[^A-Za-z0-9_]/g, "_").replace(/^([0-9])/, "_$1").slice(0, 56) || "step";
    let id = clean;
    for (let n = 2; stepById(id) || id === "container" || id === "trigger"; n += 1) id = `${clean}_${n}`;
    return id;
  }

  function autoPositions() {
    // Steps without a layout: rows by dependency depth, in file order.
    const depth = {};
    const visit = (s, trail) => {
      if (depth[s.id] !== undefined) return depth[s.id];
      let d = 0;
      for (const dep of Array.isArray(s.depends_on) ? s.depends_on : []) {
        const parent = stepById(dep);
        if (parent && !trail.has(dep)) d = Math.max(d, visit(parent, new Set([...trail, dep])) + 1);
      }
      depth[s.id] = d;
      return d;
    };
    const perRow = {};
    const out = {};
    for (const s of steps()) {
      const d = visit(s, new Set([s.id]));
      const i = (perRow[d] = (perRow[d] || 0) + 1) - 1;
      out[s.id] = { x: i * (NODE_W + 30), y: d * 120 };
    }
    return out;
  }

  function position(step, auto) {
    const l = isObject(step.layout) && typeof step.layout.x === "number" && typeof step.layout.y === "number"
      ? step.layout : (auto[step.id] || { x: 0, y: 0 });
    return { left: l.x + ORIGIN.x, top: l.y + ORIGIN.y };
  }

  // -- canvas -----------------------------------------------------------------
  function nodeFor(id) {
    return [...canvas.querySelectorAll(".node")].find((n) => n.dataset.stepId === id);
  }

  function drawEdges() {
    while (edges.firstChild) edges.removeChild(edges.firstChild);
    for (const s of steps()) {
      const to = nodeFor(s.id);
      for (const dep of Array.isArray(s.depends_on) ? s.depends_on : []) {
        const from = nodeFor(dep);
        if (!from || !to) continue;
        const x1 = from.offsetLeft + NODE_W / 2;
        const y1 = from.offsetTop + NODE_H;
        const x2 = to.offsetLeft + NODE_W / 2;
        const y2 = to.offsetTop;
        const path = document.createElementNS("http://www.w3.org/2000/svg", "path");
        const dy = Math.max(30, Math.abs(y2 - y1) / 2);
        path.setAttribute("d", `M${x1},${y1} C${x1},${y1 + dy} ${x2},${y2 - dy} ${x2},${y2}`);
        path.setAttribute("class", "edge");
        path.dataset.from = dep;
        path.dataset.to = s.id;
        edges.append(path);
      }
    }
  }

  function renderCanvas() {
    // Nodes are kept and updated in place (keyed by step id): a validation
    // answer arriving mid-drag must not pull the node from under the pointer.
    if (drag) { pendingRender = true; return; }
    const auto = autoPositions();
    const faults = new Map();
    for (const p of state.problems) if (p.step) faults.set(p.step, [...(faults.get(p.step) || []), p.message]);
    const existing = new Map([...canvas.querySelectorAll(".node")].map((n) => [n.dataset.stepId, n]));
    const wanted = new Set();
    for (const s of steps()) {
      if (typeof s.id !== "string" || wanted.has(s.id)) continue;
      wanted.add(s.id);
      const { left, top } = position(s, auto);
      const fault = faults.get(s.id);
      let node = existing.get(s.id);
      if (!node) {
        node = el("div", { dataset: { stepId: s.id } },
          el("div", { class: "port port-in", title: "depends on" }),
          el("div", { class: "node-title mono" }),
          el("div", { class: "node-sub" }),
          el("div", { class: "port port-out", title: "drag to a step that depends on this one" }));
        canvas.append(node);
      }
      node.className = `node${s.id === state.selected ? " selected" : ""}${fault ? " fault" : ""}`;
      node.dataset.type = String(s.type);
      node.title = fault ? fault.join("\n") : (s.description || "");
      node.querySelector(".node-title").textContent = visible(s.id);
      node.querySelector(".node-sub").textContent = visible(s.type === "action" ? s.action : s.type);
      node.style.left = `${left}px`;
      node.style.top = `${top}px`;
    }
    for (const [id, node] of existing) if (!wanted.has(id)) node.remove();
    drawEdges();
  }

  // -- pointer interactions: palette drop, node move, connect ----------------
  let pendingRender = false;

  function canvasPoint(ev) {
    const rect = canvas.getBoundingClientRect();
    return { x: ev.clientX - rect.left, y: ev.clientY - rect.top };
  }

  function overCanvas(ev) {
    const under = document.elementFromPoint(ev.clientX, ev.clientY);
    return Boolean(under && canvasWrap.contains(under));
  }

  palette.addEventListener("pointerdown", (ev) => {
    const item = ev.target.closest(".palette-item");
    if (!item) return;
    ev.preventDefault();
    const ghost = el("div", { class: "ghost", text: item.dataset.action || item.dataset.kind });
    ghost.style.left = `${ev.clientX}px`;
    ghost.style.top = `${ev.clientY}px`;
    document.body.append(ghost);
    drag = { mode: "palette", item, ghost };
  });

  canvas.addEventListener("pointerdown", (ev) => {
    const node = ev.target.closest(".node");
    if (!node) return;
    ev.preventDefault();
    if (ev.target.classList.contains("port-out")) {
      const line = document.createElementNS("http://www.w3.org/2000/svg", "line");
      line.setAttribute("class", "edge pending");
      const x = node.offsetLeft + NODE_W / 2;
      const y = node.offsetTop + NODE_H;
      for (const [k, v] of [["x1", x], ["y1", y], ["x2", x], ["y2", y]]) line.setAttribute(k, v);
      edges.append(line);
      drag = { mode: "connect", from: node.dataset.stepId, line };
      return;
    }
    drag = { mode: "move", node, id: node.dataset.stepId, start: { x: ev.clientX, y: ev.clientY },
      origin: { left: node.offsetLeft, top: node.offsetTop }, moved: false };
  });

  const onMove = (ev) => {
    if (!drag) return;
    if (drag.mode === "palette") {
      drag.ghost.style.left = `${ev.clientX}px`;
      drag.ghost.style.top = `${ev.clientY}px`;
    } else if (drag.mode === "move") {
      const dx = ev.clientX - drag.start.x;
      const dy = ev.clientY - drag.start.y;
      if (Math.abs(dx) + Math.abs(dy) > 3) drag.moved = true;
      if (drag.moved) {
        drag.node.style.left = `${Math.max(0, drag.origin.left + dx)}px`;
        drag.node.style.top = `${Math.max(0, drag.origin.top + dy)}px`;
        drawEdges();
      }
    } else if (drag.mode === "connect") {
      const p = canvasPoint(ev);
      drag.line.setAttribute("x2", p.x);
      drag.line.setAttribute("y2", p.y);
    }
  };

  const onUp = (ev) => {
    if (!drag) return;
    const d = drag;
    drag = null;
    if (d.mode === "palette") {
      d.ghost.remove();
      if (overCanvas(ev)) {
        const p = canvasPoint(ev);
        addStep(d.item.dataset.kind, d.item.dataset.action, { x: Math.round(p.x - ORIGIN.x - NODE_W / 2), y: Math.round(p.y - ORIGIN.y - 12) });
      }
    } else if (d.mode === "move") {
      if (d.moved) {
        const step = stepById(d.id);
        if (step) {
          step.layout = { x: Math.round(d.node.offsetLeft - ORIGIN.x), y: Math.round(d.node.offsetTop - ORIGIN.y) };
          changed();
        }
      } else {
        select(d.id);
      }
    } else if (d.mode === "connect") {
      d.line.remove();
      const under = document.elementFromPoint(ev.clientX, ev.clientY);
      const target = under && under.closest(".node");
      if (target && target.dataset.stepId !== d.from) connect(d.from, target.dataset.stepId);
    }
    if (pendingRender) { pendingRender = false; renderCanvas(); }
  };
  document.addEventListener("pointermove", onMove);
  document.addEventListener("pointerup", onUp);
  palette.addEventListener("keydown", (ev) => {
    const item = ev.target.closest(".palette-item");
    if (item && ev.key === "Enter") addStep(item.dataset.kind, item.dataset.action, null);
  });

  // -- edits ------------------------------------------------------------------
  function addStep(kind, action, layout) {
    if (!Array.isArray(state.doc.steps)) state.doc.steps = [];
    const step = kind === "action"
      ? { id: uniqueId(action), type: "action", action, parameters: {} }
      : { id: uniqueId(kind), type: kind, parameters: DEFAULT_PARAMS[kind]() };
    if (layout) step.layout = layout;
    else step.layout = { x: steps().length * 40, y: steps().length * 40 };
    state.doc.steps.push(step);
    state.selected = step.id;
    changed();
  }

  function connect(from, to) {
    const step = stepById(to);
    if (!step) return;
    const deps = Array.isArray(step.depends_on) ? step.depends_on : [];
    if (deps.includes(from)) return;
    if (Array.isArray(step.depends_on)) step.depends_on.push(from);
    else insertAfter(step, "depends_on", [from], ["action", "type", "description", "id"]);
    state.selected = to;
    changed();
  }

  function insertAfter(obj, key, value, after) {
    // New keys go where a person would write them (after id/type/action...), so a saved file reads naturally.
    const entries = Object.entries(obj);
    let at = -1;
    for (const k of after) { const i = entries.findIndex(([e]) => e === k); if (i > at) at = i; }
    entries.splice(at + 1, 0, [key, value]);
    for (const k of Object.keys(obj)) delete obj[k];
    Object.assign(obj, Object.fromEntries(entries));
  }

  function removeStep(id) {
    state.doc.steps = steps().filter((s) => s.id !== id);
    for (const s of steps()) {
      if (Array.isArray(s.depends_on) && s.depends_on.includes(id)) {
        s.depends_on = s.depends_on.filter((d) => d !== id);
        if (!s.depends_on.length) delete s.depends_on;
      }
    }
    state.selected = null;
    changed();
  }

  function renameStep(step, to) {
    const from = step.id;
    if (!to || to === from) return;
    step.id = to;
    for (const s of steps()) {
      if (Array.isArray(s.depends_on)) s.depends_on = s.depends_on.map((d) => (d === from ? to : d));
      if (s.parameters !== undefined) s.parameters = renameRefs(s.parameters, from, to);
      if (s.when !== undefined) s.when = renameRefs(s.when, from, to);
    }
    state.selected = to;
    changed();
  }

  function setParam(step, name, value) {
    if (!isObject(step.parameters)) step.parameters = {};
    if (value === undefined) delete step.parameters[name];
    else step.parameters[name] = value;
    changed(false);
  }

  function select(id) {
    state.selected = id;
    renderCanvas();
    renderInspector();
  }

  let validation = 0;
  const validate = debounce(async () => {
    const mine = ++validation;
    const { status, data } = await api("POST", "playbooks/validate", { document: state.doc });
    if (!alive.on || status !== 200 || mine !== validation) return; // a newer edit's answer wins
    state.problems = data.problems;
    renderProblems();
    renderCanvas();
    renderStepProblems();
  }, 200);

  function changed(rerenderInspector = true) {
    renderCanvas();
    if (rerenderInspector) renderInspector();
    updateStatus();
    validate();
  }

  function updateStatus() {
    const dirty = JSON.stringify(state.doc) !== state.saved;
    saveStatus.textContent = dirty ? "unsaved changes" : (state.key ? `saved (${state.key})` : "");
    saveButton.textContent = state.editable ? "Save" : "Save a copy";
  }

  function renderProblems() {
    clear(problemsBox);
    if (!state.problems.length) {
      problemsBox.append(el("p", { class: "ok", id: "valid", text: "Valid: 'playbook validate' finds no problem." }));
      return;
    }
    problemsBox.append(el("ul", { class: "problems" }, state.problems.map((p) => el("li", {
      dataset: { step: p.step || "" }, on: { click: () => p.step && select(p.step) } }, p.message))));
  }

  // -- inspector --------------------------------------------------------------
  async function bindOptions(step, name, selectEl) {
    const request = name === null ? { field: "when" } : { parameter: name };
    const { status, data } = await api("POST", "playbooks/paths", { document: state.doc, step: step.id, ...request });
    if (status !== 200 || !alive.on) return;
    for (const p of data.paths) {
      const what = [p.data_type, ...p.contains].join(", ");
      selectEl.append(el("option", { value: p.ref, disabled: !p.ok, title: p.reason || "",
        dataset: { ok: p.ok ? "yes" : "no" },
        text: p.ok ? `${p.root}.${p.path} (${what})` : `${p.root}.${p.path} (${what}) — refused: ${p.reason}` }));
    }
  }

  function bindSelect(step, name, onPick) {
    const label = name === null ? "when" : name;
    const s = el("select", { id: `bind-${label}`, class: "bind", "aria-label": `Bind ${label} to a data path` },
      el("option", { value: "", text: "bind a data path…" }));
    s.addEventListener("change", () => {
      const ref = s.value;
      s.value = "";
      if (ref) onPick(ref);
    });
    bindOptions(step, name, s);
    return s;
  }

  function textParam(step, name, { multiline = false, array = false } = {}) {
    const params = isObject(step.parameters) ? step.parameters : {};
    const current = params[name];
    const shown = current === undefined ? "" : (array && Array.isArray(current) ? current.join(", ")
      : (typeof current === "string" ? current : JSON.stringify(current)));
    const input = multiline ? el("textarea", { id: `param-${name}`, rows: 3 }) : el("input", { id: `param-${name}`, type: "text" });
    input.value = shown;
    input.addEventListener("input", () => {
      const v = input.value;
      if (v === "") setParam(step, name, undefined);
      else if (array) setParam(step, name, v.split(",").map((t) => t.trim()).filter((t) => t));
      else setParam(step, name, v);
    });
    return input;
  }

  function renderInspector() {
    clear(inspector);
    const step = stepById(state.selected);
    if (!step) {
      inspector.append(el("h3", { text: "Playbook" }), el("p", { class: "muted", text: "Select a step to edit it." }),
        el("p", { class: "muted small", text: manifest.type_help }));
      return;
    }
    const idInput = el("input", { id: "step-id", type: "text", value: step.id });
    idInput.addEventListener("change", () => renameStep(step, idInput.value.trim()));
    const descInput = el("input", { id: "step-description", type: "text", value: step.description || "" });
    descInput.addEventListener("input", () => {
      if (descInput.value) step.description = descInput.value; else delete step.description;
      changed(false);
    });
    inspector.append(el("h3", {}, "Step ", el("span", { class: "mono", text: step.id })),
      el("label", { for: "step-id", text: "id" }), idInput,
      el("label", { for: "step-description", text: "description" }), descInput,
      el("p", { class: "muted", text: step.type === "action" ? `action ${step.action}` : `built-in ${step.type}` }));

    // Parameters.
    const params = el("div", { class: "params" }, el("h4", { text: "Parameters" }));
    inspector.append(params);
    if (step.type === "action") {
      const spec = actionSpec(step.action);
      const props = (spec && spec.parameters.properties) || {};
      const required = new Set((spec && spec.parameters.required) || []);
      for (const [name, prop] of Object.entries(props)) {
        const isArray = prop.type === "array";
        const input = textParam(step, name, { array: isArray });
        params.append(el("label", { for: `param-${name}` }, el("span", { class: "mono", text: name }),
          el("span", { class: required.has(name) ? "req" : "muted", text: required.has(name) ? " required" : " optional" }),
          prop.contains ? el("span", { class: "muted", text: ` · needs ${prop.contains.join(" or ")}` }) : null),
        input, bindSelect(step, name, (ref) => { setParam(step, name, isArray ? [ref] : ref); renderInspector(); }));
      }
      if (!Object.keys(props).length) params.append(el("p", { class: "muted", text: "No parameters." }));
    } else if (step.type === "add_note") {
      const input = textParam(step, "text", { multiline: true });
      params.append(el("label", { for: "param-text", text: "text" }), input,
        bindSelect(step, "text", (ref) => { setParam(step, "text", `${step.parameters.text || ""} ${ref}`.trim()); renderInspector(); }));
    } else if (step.type === "add_tag") {
      const input = textParam(step, "tags", { array: true });
      params.append(el("label", { for: "param-tags", text: "tags (comma-separated)" }), input,
        bindSelect(step, "tags", (ref) => { setParam(step, "tags", [...(step.parameters.tags || []), ref]); renderInspector(); }));
    } else if (step.type === "set_severity") {
      const input = textParam(step, "severity");
      const mode = el("select", { id: "param-mode" }, ["", "set", "raise"].map((m) =>
        el("option", { value: m, selected: (step.parameters || {}).mode === m || (!m && !(step.parameters || {}).mode), text: m || "(default: set)" })));
      mode.addEventListener("change", () => setParam(step, "mode", mode.value || undefined));
      params.append(el("label", { for: "param-severity", text: "severity (informational, low, medium, high or a reference)" }), input,
        bindSelect(step, "severity", (ref) => { setParam(step, "severity", ref); renderInspector(); }),
        el("label", { for: "param-mode", text: "mode" }), mode);
    } else if (step.type === "decision") {
      params.append(el("label", { for: "param-condition", text: "condition (JSON)" }),
        jsonField("param-condition", (step.parameters || {}).condition, (v) => setParam(step, "condition", v)),
        bindSelect(step, "condition", (ref) => { setParam(step, "condition", ref); renderInspector(); }));
    }

    // when / on_failure / depends_on.
    const when = jsonField("step-when", step.when, (v) => { if (v === undefined) delete step.when; else step.when = v; changed(false); });
    const whenArea = when.querySelector("textarea");
    inspector.append(el("label", { for: "step-when", text: "when (JSON condition; empty: always)" }), when,
      bindSelect(step, null, (ref) => {
        // Insert the reference as a JSON string where the cursor is, e.g. inside {"gt": [|, 0]}.
        whenArea.focus();
        whenArea.setRangeText(JSON.stringify(ref), whenArea.selectionStart, whenArea.selectionEnd, "end");
        whenArea.dispatchEvent(new Event("input"));
      }));
    const onFailure = el("select", { id: "step-on-failure" }, [["", "(default: stop)"], ["stop", "stop"], ["continue", "continue"]]
      .map(([v, t]) => el("option", { value: v, selected: (step.on_failure || "") === v, text: t })));
    onFailure.addEventListener("change", () => {
      if (onFailure.value) step.on_failure = onFailure.value; else delete step.on_failure;
      changed(false);
    });
    inspector.append(el("label", { for: "step-on-failure", text: "on_failure" }), onFailure);
    const deps = Array.isArray(step.depends_on) ? step.depends_on : [];
    inspector.append(el("h4", { text: "Depends on" }), el("ul", { id: "step-deps" }, deps.map((d) => el("li", {},
      el("span", { class: "mono", text: d }), " ",
      el("button", { type: "button", class: "link", title: `remove the dependency on ${d}`, text: "remove",
        on: { click: () => { step.depends_on = deps.filter((x) => x !== d); if (!step.depends_on.length) delete step.depends_on; changed(); } } })))));
    // The keyboard's way to connect steps (the canvas's is dragging from a step's lower dot).
    const candidates = steps().map((s) => s.id).filter((id) => typeof id === "string" && id !== step.id && !deps.includes(id));
    if (candidates.length) {
      const addDep = el("select", { id: "step-add-dep", "aria-label": "Add a step this one depends on" },
        el("option", { value: "", text: "add a dependency…" }), candidates.map((id) => el("option", { value: id, text: id })));
      addDep.addEventListener("change", () => { if (addDep.value) connect(addDep.value, step.id); });
      inspector.append(addDep);
    }
    inspector.append(el("ul", { class: "problems", id: "step-problems" }));
    renderStepProblems();
    inspector.append(el("button", { id: "step-delete", type: "button", class: "danger", text: "Delete step",
      on: { click: () => removeStep(step.id) } }));
  }

  function renderStepProblems() {
    const list = inspector.querySelector("#step-problems");
    if (!list) return;
    clear(list).append(...state.problems.filter((p) => p.step === state.selected).map((p) => el("li", { text: p.message })));
  }

  function jsonField(id, value, onValid) {
    const area = el("textarea", { id, rows: 3, class: "mono" });
    area.value = value === undefined ? "" : JSON.stringify(value);
    const note = el("div", { class: "error small" });
    area.addEventListener("input", () => {
      if (area.value.trim() === "") { note.textContent = ""; onValid(undefined); return; }
      try {
        const parsed = JSON.parse(area.value);
        note.textContent = "";
        onValid(parsed);
      } catch (err) {
        note.textContent = "Not JSON yet: write true, \"{{step.path}}\" or {\"gt\": [\"{{files.summary.malware}}\", 0]}.";
      }
    });
    const box = el("div", {}, area, note);
    return box;
  }

  // -- document fields, loading, saving, running -------------------------------
  function fillHeader() {
    nameInput.value = state.doc.name ?? "";
    versionInput.value = state.doc.version ?? "";
    triggerSelect.value = (state.doc.trigger || {}).type || "manual";
    descInput.value = state.doc.description ?? "";
  }
  nameInput.addEventListener("input", () => { state.doc.name = nameInput.value; changed(false); });
  versionInput.addEventListener("input", () => { state.doc.version = versionInput.value; changed(false); });
  descInput.addEventListener("input", () => { state.doc.description = descInput.value; changed(false); });
  triggerSelect.addEventListener("change", () => {
    state.doc.trigger = { ...(isObject(state.doc.trigger) ? state.doc.trigger : {}), type: triggerSelect.value };
    changed();
  });

  async function refreshList(selectedKey) {
    const { data } = await api("GET", "playbooks");
    clear(pbSelect).append(el("option", { value: "", text: "(new playbook)" }),
      ...(data.playbooks || []).map((p) => el("option", { value: p.key, selected: p.key === selectedKey,
        text: `${p.name || p.file} — ${p.source}${p.editable ? "" : ", read-only"}` })));
  }

  async function open(key) {
    if (!key) {
      state.key = null;
      state.doc = newDocument();
      state.editable = true;
      state.saved = "";
    } else {
      const { status, data } = await api("GET", `playbooks/${key.split("/").map(encodeURIComponent).join("/")}`);
      if (status !== 200 || !isObject(data.document)) {
        saveStatus.textContent = visible(data.error || "The file is not JSON; fix it by hand.");
        return;
      }
      state.key = key;
      state.doc = data.document;
      state.editable = data.editable;
      state.saved = JSON.stringify(data.document);
      state.problems = data.problems;
    }
    state.selected = null;
    for (const field of headerFields) field.disabled = false;
    fillPalette();
    fillHeader();
    renderProblems();
    renderCanvas();
    renderInspector();
    updateStatus();
    validate();
  }

  pbSelect.addEventListener("change", () => { location.hash = pbSelect.value ? `#/editor/${encodeURIComponent(pbSelect.value)}` : "#/editor"; });
  newButton.addEventListener("click", () => { location.hash = "#/editor/new"; });

  saveButton.addEventListener("click", async () => {
    const name = String(state.doc.name || "");
    const { status, data } = await api("PUT", `playbooks/local/${encodeURIComponent(name + ".json")}`, { document: state.doc });
    if (status !== 200) {
      saveStatus.textContent = visible(data.error);
      if (data.problems) { state.problems = data.problems; renderProblems(); renderCanvas(); }
      return;
    }
    state.key = data.key;
    state.editable = true;
    state.saved = JSON.stringify(state.doc);
    await refreshList(data.key);
    updateStatus();
    saveStatus.textContent = visible(`saved to ${data.path}`);
    if (location.hash !== `#/editor/${encodeURIComponent(data.key)}`) history.replaceState(null, "", `#/editor/${encodeURIComponent(data.key)}`);
  });

  runButton.addEventListener("click", async () => {
    if (!state.key || JSON.stringify(state.doc) !== state.saved) {
      clear(runBox).append(el("p", { class: "error", text: "Save the playbook first: runs use the saved file, as the CLI does." }));
      return;
    }
    const reply = await api("POST", "playbooks/run", { key: state.key, alert_id: alertSelect.value });
    if (reply.status !== 202) { clear(runBox).append(el("p", { class: "error", text: reply.data.error })); return; }
    followJob(reply.data.job, (job) => {
      clear(runBox).append(el("div", { class: "job", dataset: { status: job.status } },
        el("div", {}, el("strong", { text: `${job.name}: ` }), el("span", { class: `status st-${job.status}`, text: job.status })),
        el("ol", { class: "steps" }, job.steps.map((s) => el("li", { dataset: { step: s.id, status: s.status } },
          el("span", { class: "mono", text: s.id }), " ", el("span", { class: `status st-${s.status}`, text: s.status })))),
        job.result ? el("p", { class: "job-message", text: job.result.message || "" }) : null,
        job.status !== "running" ? el("a", { id: "run-alert-link", href: `#/alert/${encodeURIComponent(alertSelect.value)}`, text: "Open the alert's files" }) : null));
      for (const s of job.steps) { const n = nodeFor(s.id); if (n) n.dataset.run = s.status; }
    });
  });

  api("GET", "containers").then(({ data }) => {
    for (const c of data.containers || []) alertSelect.append(el("option", { value: c.alert_id, text: `${c.alert_id} — ${c.name}` }));
  });

  await refreshList(initialKey && initialKey !== "new" ? initialKey : "");
  await open(initialKey && initialKey !== "new" ? initialKey : null);
  return () => {
    alive.on = false;
    document.removeEventListener("pointermove", onMove);
    document.removeEventListener("pointerup", onUp);
  };
}
