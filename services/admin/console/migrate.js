// The migration page: from the legacy Amazon S3 destination to AWS S3, in the reference's order
// ("Migrate existing destinations"), the same steps as `s3dest migrate`:
//  1. find the source's Amazon S3 destinations;
//  2. create the AWS S3 destination with bucket <bucket>/segment-logs/test;
//  3. validate it;
//  4. wait until data arrives under <bucket>/segment-logs/test/segment-logs;
//  5. switch the bucket to <bucket> (after the person confirms);
//  6. disable the Amazon S3 destinations;
//  7. wait until <bucket>/segment-logs receives data from the new destination;
//  8. say what to remove by hand: the test folder.
import { api } from "./api.js";
import { h, field, select, showErrors, clearErrors, alertBox } from "./dom.js";
import { listAll } from "./sources.js";
import { AWS_S3, validationView, runValidation, fixFor } from "./destinations.js";

function waitForData(id, since, log, signal) {
  return new Promise((resolve, reject) => {
    const look = async () => {
      if (signal.aborted) return reject(new Error("left the page"));
      try {
        const st = (await api.get(`/destinations/${encodeURIComponent(id)}/status`)).status;
        const last = st.lastDelivery && new Date(st.lastDelivery.deliveredAt);
        if (last && (!since || last > since)) return resolve(last);
      } catch (err) {
        log(`  could not read the status: ${err.message}`);
      }
      setTimeout(look, 5000);
    };
    look();
  });
}

export async function migratePage(main, signal) {
  const sources = await listAll("sources");
  const form = h("form", { class: "card", "aria-labelledby": "migrate-title", novalidate: true },
    h("h2", { id: "migrate-title" }, "Migrate from Amazon S3"),
    h("p", {}, "Moves a source from the legacy Amazon S3 destination to AWS S3 with IAM Role Support without overwriting data: first into a test folder, then, once data arrives there, into the bucket, and only then is the old destination disabled."),
    h("div", { class: "row" },
      select({ label: "Source", name: "sourceId", options: [["", "Choose a source"], ...sources.map((s) => [s.id, `${s.name || s.slug} (${s.id})`])] }),
      field({ label: "IAM Role ARN", name: "iamRoleArn", hint: "The role you created for s3dest (Workspace page)." })),
    h("div", { class: "row" },
      field({ label: "Bucket", name: "s3Bucket", hint: "Default: the Amazon S3 destination's." }),
      field({ label: "Region", name: "region", hint: "Default: the Amazon S3 destination's." })),
    h("div", { class: "actions" }, h("button", { type: "submit" }, "Start migration")));
  const log = h("ol", { class: "migration-log", "aria-live": "polite" });
  const out = h("div", {});
  main.replaceChildren(h("h1", {}, "Migrate"), form, h("section", { "aria-label": "Migration steps" }, log, out));

  form.addEventListener("submit", async (ev) => {
    ev.preventDefault();
    clearErrors(form);
    log.replaceChildren();
    out.replaceChildren();
    const v = (n) => form.elements[n].value.trim();
    if (!v("sourceId")) {
      showErrors(form, { errors: [{ message: "sourceId: choose the source to migrate" }] });
      return;
    }
    try {
      await migrate(v, log, out, form, signal);
    } catch (err) {
      out.replaceChildren(alertBox("error", err.message));
    }
  });
}

async function migrate(v, log, out, form, signal) {
  const say = (text) => log.append(h("li", {}, text));
  const note = (...children) => log.lastChild.append(h("div", { class: "muted" }, children));
  const sourceId = v("sourceId");
  say(`Find the Amazon S3 destinations of source ${sourceId}.`);
  const q = (slug) => `/destinations?pagination.count=200&sourceId=${encodeURIComponent(sourceId)}&slug=${slug}`;
  const legacy = (await api.get(q("amazon-s3"))).destinations || [];
  note(legacy.length ? legacy.map((d) => `${d.id} "${d.name}": bucket ${d.settings.s3Bucket} in ${d.settings.region}, ${d.enabled ? "enabled" : "disabled"}`).join("; ") : "None: nothing to disable at the end.");
  const bucket = (v("s3Bucket") || (legacy[0] && legacy[0].settings.s3Bucket) || "").replace(/\/$/, "");
  const region = v("region") || (legacy[0] && legacy[0].settings.region) || "";
  if (!bucket || !region) {
    showErrors(form, { errors: [{ message: "s3Bucket: the source has no Amazon S3 destination to take it from; give the bucket\nregion: give the bucket's region" }] });
    throw new Error("Give the bucket and the region.");
  }
  const test = `${bucket}/segment-logs/test`;
  const existing = (await api.get(q("aws-s3"))).destinations || [];
  let dest;
  if (!existing.length) {
    if (!v("iamRoleArn")) {
      showErrors(form, { errors: [{ message: "iamRoleArn: the IAM role you created for s3dest is required" }] });
      throw new Error("Give the IAM Role ARN.");
    }
    say(`Create the AWS S3 destination with bucket ${test} (data lands under ${test}/segment-logs/ first).`);
    try {
      dest = (await api.post("/destinations", { sourceId, metadataId: AWS_S3, name: "AWS S3", enabled: true, settings: { region, s3Bucket: test, iamRoleArn: v("iamRoleArn") } })).destination;
    } catch (err) {
      const rest = showErrors(form, err, (f) => f.replace(/^settings\./, ""));
      throw new Error(rest.join(" ") || "Correct the fields above.");
    }
    note(`Created ${dest.id}.`);
  } else if (existing[0].settings.s3Bucket === test) {
    dest = existing[0];
    say(`Reuse the AWS S3 destination ${dest.id}, already writing to ${test}.`);
  } else if (existing[0].settings.s3Bucket === bucket) {
    dest = existing[0];
    say(`The AWS S3 destination ${dest.id} already writes to ${bucket}: the switch is done.`);
    return finish(dest, legacy, bucket, null, say, note, out, signal);
  } else {
    throw new Error(`Source ${sourceId} already has an AWS S3 destination ${existing[0].id} writing to ${existing[0].settings.s3Bucket}, neither ${test} nor ${bucket}; the migration will not change it.`);
  }

  say("Validate the new destination.");
  const view = validationView(test);
  note(view.el);
  const result = await runValidation(dest.id, view);
  if (!result || !result.ok) throw new Error(`Validation failed: ${result ? `${result.message} ${fixFor(result.code, test)}` : "see above"}. Fix the role, then start again: the migration resumes.`);

  say(`Wait for data at s3://${test}/segment-logs/ (send events to the source; the reference says to allow about an hour).`);
  await waitForData(dest.id, null, note, signal);
  note("Data arrived.");

  const enabledLegacy = legacy.filter((d) => d.enabled);
  const question = `Switch ${dest.id} to bucket ${bucket}${enabledLegacy.length ? ` and disable the Amazon S3 destination(s) ${enabledLegacy.map((d) => d.id).join(", ")}` : ""}`;
  await new Promise((resolve) => {
    out.replaceChildren(alertBox("info", h("p", {}, `${question}?`), h("button", { type: "button", id: "switch-now", onclick: resolve }, "Switch now")));
    out.querySelector("button").focus();
  });
  out.replaceChildren();
  say(`Switch the bucket of ${dest.id} to ${bucket}.`);
  const switched = new Date();
  await api.patch(`/destinations/${encodeURIComponent(dest.id)}`, { settings: { s3Bucket: bucket } });
  return finish(dest, legacy, bucket, switched, say, note, out, signal);
}

async function finish(dest, legacy, bucket, switched, say, note, out, signal) {
  for (const d of legacy.filter((x) => x.enabled)) {
    say(`Disable the Amazon S3 destination ${d.id}.`);
    await api.patch(`/destinations/${encodeURIComponent(d.id)}`, { destinationId: d.id, enabled: false });
  }
  say(`Wait for data at s3://${bucket}/segment-logs/ from ${dest.id}.`);
  await waitForData(dest.id, switched, note, signal);
  note("Data arrived.");
  say(`Remove the test folder s3://${bucket}/segment-logs/test/ from the bucket by hand when you no longer need it.`);
  out.replaceChildren(alertBox("ok", "Migration done."));
}
