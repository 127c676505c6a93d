// The destinations pages: create an AWS S3 destination, enable or disable it, validate it step by step,
// and see its delivery status per received day.
import { api } from "./api.js";
import { h, field, select, showErrors, clearErrors, alertBox, toast, when, seconds, uid } from "./dom.js";
import { listAll } from "./sources.js";
import { barChart, lineChart } from "./chart.js";

export const AWS_S3 = "60be92c8dabdd561bf6c9130";
export const AMAZON_S3 = "54f418c3db31d978f14aa925";

// The reference's validation steps, in order, as a customer reads them.
export const STEPS = [
  ["VALIDATION_STEP_ASSUME_INTERMEDIATE_ROLE", "Assume s3dest's intermediate role"],
  ["VALIDATION_STEP_ASSUME_ROLE_WITHOUT_EXTERNAL_ID", "Your role refuses us without the External ID"],
  ["VALIDATION_STEP_ASSUME_ROLE_WITH_EXTERNAL_ID", "Assume your role with the External ID"],
  ["VALIDATION_STEP_PUT_DUMMY_OBJECT", "Upload segment-logs/dummy-object.txt"],
];

// FIXES say what to change for each failed validation, next to the reference's message.
const FIXES = {
  VALIDATION_CODE_INTERMEDIATE_ROLE_FAILED: "s3dest could not assume its own intermediate role: the operator checks --intermediate-role-arn and s3dest's AWS credentials.",
  VALIDATION_CODE_EXTERNAL_ID_NOT_REQUIRED: "Your role can be assumed without the External ID: replace its trust relationship with the one on the Workspace page (Condition sts:ExternalId).",
  VALIDATION_CODE_ROLE_ACCESS_DENIED: "Your role refused us: its trust relationship must trust our intermediate role with your workspace ID as External ID (Workspace page), and the role ARN must be right.",
  VALIDATION_CODE_ROLE_UNKNOWN_ERROR: "Check the IAM Role ARN and follow the set-up steps on the Workspace page.",
  VALIDATION_CODE_PUT_OBJECT_DENIED: "Attach the permission policy on the Workspace page to the role: s3:PutObject and s3:PutObjectAcl on <bucket>/segment-logs/* (and the KMS policy for an SSE-KMS bucket).",
  VALIDATION_CODE_PUT_OBJECT_UNKNOWN_ERROR: "Check the bucket name and the role's permission policy (Workspace page).",
  VALIDATION_CODE_BUCKET_NOT_FOUND: "The bucket does not exist: check the Bucket setting.",
  VALIDATION_CODE_WRONG_REGION: "Set the destination's Region to the bucket's region.",
};

// fixFor says what to fix for a validation code, naming the bucket when it is known.
export function fixFor(code, bucket) {
  const fix = FIXES[code] || "Follow the set-up steps on the Workspace page, then Validate again.";
  return bucket ? fix.replace("<bucket>", bucket) : fix;
}

const settingsInput = (f) => f.replace(/^settings\./, "");

// destinationForm creates an AWS S3 destination; each of the API's errors appears under its input.
export function destinationForm(sources, onCreated, preset = {}) {
  const form = h("form", { class: "card", "aria-labelledby": "new-dest-title", novalidate: true },
    h("h2", { id: "new-dest-title" }, "Create an AWS S3 destination"),
    h("div", { class: "row" },
      select({ label: "Source", name: "sourceId", value: preset.sourceId || "", options: [["", "Choose a source"], ...sources.map((s) => [s.id, `${s.name || s.slug} (${s.id})`])] }),
      field({ label: "Name", name: "name", value: preset.name || "AWS S3" })),
    h("div", { class: "row" },
      field({ label: "Region", name: "region", value: preset.region || "", required: true, hint: "The bucket's region, such as us-west-2." }),
      field({ label: "Bucket", name: "s3Bucket", value: preset.s3Bucket || "", required: true, hint: "The bucket's name, optionally /a/prefix." }),
      field({ label: "IAM Role ARN", name: "iamRoleArn", value: preset.iamRoleArn || "", required: true, hint: "arn:aws:iam::ACCOUNT_ID:role/ROLE_NAME" })),
    h("div", { class: "field check" },
      h("input", { type: "checkbox", id: "dest-enabled", name: "enabled", checked: true }),
      h("label", { for: "dest-enabled" }, "Enabled: deliver as soon as it is created")),
    h("div", { class: "actions" }, h("button", { type: "submit" }, "Create destination")),
    h("div", { class: "form-alert" }));
  form.addEventListener("submit", async (ev) => {
    ev.preventDefault();
    clearErrors(form);
    const alert = form.querySelector(".form-alert");
    alert.replaceChildren();
    const v = (n) => form.elements[n].value.trim();
    const missing = [];
    if (!v("sourceId")) missing.push("sourceId: choose the source whose events this destination receives");
    for (const [n, what] of [["region", "the bucket's region"], ["s3Bucket", "the bucket's name"], ["iamRoleArn", "the ARN of your IAM role"]]) {
      if (!v(n)) missing.push(`${n}: required, ${what}`);
    }
    if (missing.length) {
      showErrors(form, { errors: [{ message: missing.join("\n") }] });
      return;
    }
    try {
      const data = await api.post("/destinations", {
        sourceId: v("sourceId"), metadataId: AWS_S3, name: v("name") || "AWS S3", enabled: form.elements.enabled.checked,
        settings: { region: v("region"), s3Bucket: v("s3Bucket"), iamRoleArn: v("iamRoleArn") },
      });
      toast(`Created destination ${data.destination.id}.`);
      onCreated(data.destination);
    } catch (err) {
      const rest = showErrors(form, err, settingsInput);
      if (rest.length) alert.replaceChildren(alertBox("error", rest.join(" ")));
    }
  });
  return form;
}

function kind(d) {
  return d.metadata && d.metadata.id === AMAZON_S3 ? "Amazon S3 (legacy)" : "AWS S3";
}

// failing says why a destination fails, from its status: the last validation or the last error of a
// day that has no later delivery. null when it is healthy.
export function failing(st, bucket) {
  if (st.validation && !st.validation.ok) return { message: st.validation.message, fix: fixFor(st.validation.code, bucket) };
  const day = (st.days || []).find((d) => d.lastError);
  if (day) return { message: day.lastError, fix: "Validate the destination to see which step fails." };
  return null;
}

export async function destinationsPage(main) {
  const [sources, dests] = await Promise.all([listAll("sources"), listAll("destinations")]);
  const statuses = await Promise.all(dests.map((d) => api.get(`/destinations/${encodeURIComponent(d.id)}/status`).then((x) => x.status).catch(() => null)));
  const rows = dests.map((d, i) => {
    const bad = statuses[i] && failing(statuses[i], d.settings.s3Bucket);
    return h("tr", { class: bad ? "failing" : null },
      h("th", { scope: "row" }, h("a", { href: `#/destinations/${encodeURIComponent(d.id)}` }, d.name || d.id)),
      h("td", {}, kind(d)),
      h("td", {}, h("code", {}, d.sourceId)),
      h("td", {}, h("code", {}, d.settings.s3Bucket)),
      h("td", {}, h("span", { class: `badge ${d.enabled ? "ok" : "off"}` }, d.enabled ? "enabled" : "disabled")),
      h("td", {}, bad ? h("span", { class: "badge bad" }, "failing") : h("span", { class: "badge ok" }, "healthy")));
  });
  main.replaceChildren(
    h("h1", {}, "Destinations"),
    destinationForm(sources, (d) => { window.location.hash = `#/destinations/${encodeURIComponent(d.id)}`; }),
    h("h2", {}, "Your destinations"),
    dests.length
      ? h("table", {},
        h("caption", { class: "sr-only" }, "Destinations"),
        h("thead", {}, h("tr", {}, ["Name", "Kind", "Source", "Bucket", "Enabled", "Health"].map((c) => h("th", { scope: "col" }, c)))),
        h("tbody", {}, rows))
      : h("p", {}, "No destinations yet."));
}

// validationView shows the reference's steps; run() marks them running, show(result) fills them in.
export function validationView(bucket) {
  const list = h("ol", { class: "steps", "aria-live": "polite" },
    STEPS.map(([key, name]) => h("li", { "data-step": key, class: "pending" }, h("span", { class: "mark" }, "·"), " ", name, h("span", { class: "detail" }))));
  const outcome = h("div", { class: "outcome" });
  const el = h("div", { class: "validation" }, list, outcome);
  const set = (li, cls, mark, detail) => {
    li.className = cls;
    li.querySelector(".mark").textContent = mark;
    li.querySelector(".detail").textContent = detail ? ` — ${detail}` : "";
  };
  return {
    el,
    run() {
      list.setAttribute("aria-busy", "true");
      outcome.replaceChildren(h("p", {}, "Validating…"));
      for (const li of list.children) set(li, "running", "…", "running");
    },
    show(v) {
      list.removeAttribute("aria-busy");
      const byStep = Object.fromEntries((v.steps || []).map((s) => [s.step, s]));
      for (const li of list.children) {
        const s = byStep[li.dataset.step];
        if (!s) set(li, "skipped", "–", "not run");
        else if (s.ok) set(li, "passed", "✓", s.detail ? `passed (${s.detail})` : "passed");
        else set(li, "failed", "✗", s.detail ? `failed (${s.detail})` : "failed");
      }
      outcome.replaceChildren(v.ok
        ? alertBox("ok", h("strong", {}, v.message || "Validation succeeded: every step passed."))
        : alertBox("error", h("strong", { class: "ref-message" }, v.message), h("p", {}, "What to fix: ", fixFor(v.code, bucket)), h("p", { class: "muted" }, v.code)));
    },
    fail(err) {
      list.removeAttribute("aria-busy");
      for (const li of list.children) set(li, "skipped", "–", "not run");
      outcome.replaceChildren(alertBox("error", err.message));
    },
  };
}

export async function runValidation(id, view) {
  view.run();
  try {
    const data = await api.post(`/destinations/${encodeURIComponent(id)}/validate`);
    view.show(data.validation);
    return data.validation;
  } catch (err) {
    view.fail(err);
    return null;
  }
}

// lagSeen keeps, per destination, the lag of each last delivery the page saw: the API reports the last
// one, so the line grows while the page is open.
const lagSeen = new Map();

function recordLag(id, last) {
  if (!last || !last.deliveredAt || last.lag === undefined || last.lag === null) return [];
  const seen = lagSeen.get(id) || [];
  const t = new Date(last.deliveredAt);
  if (!seen.length || seen[seen.length - 1].t.getTime() !== t.getTime()) seen.push({ t, value: seconds(last.lag) });
  lagSeen.set(id, seen.slice(-50));
  return lagSeen.get(id);
}

function dayLabel(ms) {
  return new Date(Number(ms)).toISOString().slice(0, 10);
}

function statusView(id, st, bucket) {
  const days = st.days || [];
  const bad = failing(st, bucket);
  const ret = st.retention || {};
  const lag = recordLag(id, st.lastDelivery);
  return h("div", {},
    bad
      ? alertBox("error", h("strong", {}, "This destination is failing: "), h("span", { class: "ref-message" }, bad.message),
        h("p", {}, "What to fix: ", bad.fix),
        h("p", {}, `Its files wait in staging${ret.oldestWaitingDeadline ? ` until ${when(ret.oldestWaitingDeadline)}` : ""} and arrive once it is fixed` +
          `${ret.waitingFiles && ret.waitingFiles !== "0" ? ` (${ret.waitingFiles} waiting now)` : ""}.`))
      : alertBox("ok", "Healthy: ", st.lastDelivery ? `last file delivered ${when(st.lastDelivery.deliveredAt)}.` : "nothing delivered yet."),
    h("table", { class: "days" },
      h("caption", {}, "Delivery per received day (UTC)"),
      h("thead", {}, h("tr", {}, ["Received day", "Files", "Events", "Last delivery", "Last error"].map((c) => h("th", { scope: "col" }, c)))),
      h("tbody", {}, days.length
        ? days.map((d) => h("tr", { "data-day": d.receivedDayMs, class: d.lastError ? "failing" : null },
          h("th", { scope: "row" }, dayLabel(d.receivedDayMs)),
          h("td", { class: "num", "data-col": "files" }, Number(d.files || 0).toLocaleString()),
          h("td", { class: "num", "data-col": "events" }, Number(d.events || 0).toLocaleString()),
          h("td", {}, when(d.lastDeliveryAt)),
          h("td", {}, d.lastError || "—")))
        : h("tr", {}, h("td", { colspan: "5" }, "Nothing delivered yet.")))),
    h("div", { class: "charts" },
      h("figure", {}, barChart("Events delivered per received day", days.slice().reverse().map((d) => ({ label: dayLabel(d.receivedDayMs).slice(5), value: Number(d.events || 0) })), "events"),
        h("figcaption", {}, "Events delivered per received day")),
      h("figure", {}, lineChart("Lag of each delivered file, seconds", lag, "s"),
        h("figcaption", {}, `Lag from an event's receipt to its file's delivery, seconds (${lag.length} deliveries seen while this page was open)`))));
}

export async function destinationPage(main, id, signal) {
  const data = await api.get(`/destinations/${encodeURIComponent(id)}`);
  const d = data.destination;
  const view = validationView(d.settings.s3Bucket);
  const statusBox = h("div", {}, h("p", {}, "Loading…"));
  const refreshStatus = async () => {
    const st = (await api.get(`/destinations/${encodeURIComponent(id)}/status`)).status;
    statusBox.replaceChildren(statusView(id, st, d.settings.s3Bucket));
  };
  const toggle = h("button", {
    type: "button", class: "secondary", id: "toggle-destination",
    onclick: async () => {
      try {
        await api.patch(`/destinations/${encodeURIComponent(id)}`, { enabled: !d.enabled });
        toast(`${d.enabled ? "Disabled" : "Enabled"} ${d.name || id}.`);
        await destinationPage(main, id, signal);
      } catch (err) {
        toast(err.message);
      }
    },
  }, d.enabled ? "Disable" : "Enable");
  const titleId = uid("dest");
  main.replaceChildren(
    h("p", {}, h("a", { href: "#/destinations" }, "← Destinations")),
    h("h1", { id: titleId }, d.name || id),
    h("section", { class: "card", "aria-label": "Settings" },
      h("div", { class: "card-head" }, h("h2", {}, "Settings"),
        h("span", { class: `badge ${d.enabled ? "ok" : "off"}` }, d.enabled ? "enabled" : "disabled"), toggle),
      h("dl", { class: "facts" },
        h("dt", {}, "ID"), h("dd", {}, h("code", {}, d.id)),
        h("dt", {}, "Kind"), h("dd", {}, kind(d)),
        h("dt", {}, "Source"), h("dd", {}, h("code", {}, d.sourceId)),
        h("dt", {}, "Region"), h("dd", {}, d.settings.region),
        h("dt", {}, "Bucket"), h("dd", {}, h("code", {}, d.settings.s3Bucket)),
        h("dt", {}, "IAM Role ARN"), h("dd", {}, h("code", {}, d.settings.iamRoleArn || "—")))),
    h("section", { class: "card", "aria-labelledby": "validate-title" },
      h("div", { class: "card-head" }, h("h2", { id: "validate-title" }, "Validate"),
        h("button", { type: "button", id: "validate", onclick: () => runValidation(id, view) }, "Validate")),
      h("p", { class: "hint" }, "Runs the reference's checks in order, as the Validate button of the Segment app does."),
      view.el),
    h("section", { class: "card", "aria-labelledby": "status-title" },
      h("div", { class: "card-head" }, h("h2", { id: "status-title" }, "Delivery status"),
        h("button", { type: "button", class: "secondary", onclick: () => refreshStatus().catch((e) => toast(e.message)) }, "Refresh")),
      statusBox));
  if (data.validation) view.show(data.validation);
  await refreshStatus();
  // The status refreshes every 5 s while this page is shown.
  const timer = setInterval(() => refreshStatus().catch(() => {}), 5000);
  signal.addEventListener("abort", () => clearInterval(timer));
}
