// Building pages from data without innerHTML: every text is a text node, so no ID or name a user typed
// can become markup.

let ids = 0;

// uid is an element ID unique in the page.
export function uid(prefix) {
  ids += 1;
  return `${prefix}-${ids}`;
}

// h makes an element: attrs are attributes (on* keys are listeners, booleans toggle), children are
// nodes, strings, or arrays of them; null and false are skipped.
export function h(tag, attrs = {}, ...children) {
  const el = document.createElement(tag);
  for (const [k, v] of Object.entries(attrs || {})) {
    if (v === null || v === undefined || v === false) continue;
    if (k.startsWith("on")) el.addEventListener(k.slice(2), v);
    else if (v === true) el.setAttribute(k, "");
    else el.setAttribute(k, String(v));
  }
  append(el, children);
  return el;
}

function append(el, children) {
  for (const c of children) {
    if (c === null || c === undefined || c === false) continue;
    if (Array.isArray(c)) append(el, c);
    else el.append(c instanceof Node ? c : document.createTextNode(String(c)));
  }
}

// field is a labelled input with a hint and a slot for its error, tied together for screen readers.
export function field({ label, name, value = "", hint = "", type = "text", required = false, attrs = {} }) {
  const id = uid(name);
  const hintId = `${id}-hint`;
  const errId = `${id}-error`;
  const input = h("input", {
    id, name, type, value, "aria-describedby": `${hintId} ${errId}`, "aria-required": required ? "true" : null, ...attrs,
  });
  return h("div", { class: "field" },
    h("label", { for: id }, label, required ? h("span", { class: "req", "aria-hidden": "true" }, " *") : null),
    input,
    h("p", { class: "hint", id: hintId }, hint),
    h("p", { class: "error", id: errId, "data-error-for": name }));
}

// select is a labelled drop-down of [value, text] options.
export function select({ label, name, options, value = "" }) {
  const id = uid(name);
  const errId = `${id}-error`;
  return h("div", { class: "field" },
    h("label", { for: id }, label),
    h("select", { id, name, "aria-describedby": errId },
      options.map(([v, text]) => h("option", { value: v, selected: v === value }, text))),
    h("p", { class: "error", id: errId, "data-error-for": name }));
}

// showErrors puts each of the API's errors under the input it names (the message starts with the
// field, such as "settings.s3Bucket: ..."; fieldOf maps that name to the input's name) and returns
// the messages that name no input of the form.
export function showErrors(form, err, fieldOf = (f) => f) {
  clearErrors(form);
  const rest = [];
  const lines = (err.errors && err.errors.length ? err.errors.map((e) => e.message) : [err.message]).flatMap((m) => m.split("\n"));
  let first = null;
  for (const line of lines) {
    const m = /^([A-Za-z][A-Za-z0-9]*(?:\.[A-Za-z][A-Za-z0-9]*)*): (.*)$/s.exec(line);
    const slot = m && form.querySelector(`[data-error-for="${fieldOf(m[1])}"]`);
    if (!slot) {
      rest.push(line);
      continue;
    }
    slot.textContent = m[2];
    const input = form.querySelector(`[name="${fieldOf(m[1])}"]`);
    input.setAttribute("aria-invalid", "true");
    first = first || input;
  }
  if (first) first.focus();
  return rest;
}

export function clearErrors(form) {
  for (const slot of form.querySelectorAll("[data-error-for]")) slot.textContent = "";
  for (const input of form.querySelectorAll("[aria-invalid]")) input.removeAttribute("aria-invalid");
}

// copyButton copies the text of the element with targetId.
export function copyButton(targetId, what) {
  return h("button", {
    type: "button", class: "secondary copy", "aria-label": `Copy ${what}`,
    onclick: async (ev) => {
      const text = document.getElementById(targetId).textContent;
      try {
        await navigator.clipboard.writeText(text);
        toast(`Copied ${what}.`);
      } catch {
        const range = document.createRange();
        range.selectNodeContents(document.getElementById(targetId));
        window.getSelection().removeAllRanges();
        window.getSelection().addRange(range);
        toast(`Selected ${what}: press Ctrl+C to copy.`);
      }
      ev.currentTarget.focus();
    },
  }, "Copy");
}

// toast says something briefly in the page's live region.
export function toast(text) {
  const el = document.getElementById("toast");
  el.textContent = text;
  el.classList.add("shown");
  clearTimeout(toast.timer);
  toast.timer = setTimeout(() => el.classList.remove("shown"), 4000);
}

// alertBox is a message that stands out: kind is "error", "ok" or "info".
export function alertBox(kind, ...children) {
  return h("div", { class: `alert ${kind}`, role: kind === "error" ? "alert" : "status" }, children);
}

// when formats an RFC 3339 time as UTC, or "—" for none.
export function when(ts) {
  if (!ts) return "—";
  return new Date(ts).toISOString().replace("T", " ").replace(/\.\d+Z$/, " UTC");
}

// seconds reads a protobuf Duration in JSON ("1.5s").
export function seconds(d) {
  return d ? Number(String(d).replace(/s$/, "")) : null;
}
