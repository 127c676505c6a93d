// The workspace page: what a customer needs to set up their IAM role, as the reference's "Create an IAM
// role" steps, filled in by GET /workspace.
import { api } from "./api.js";
import { h, field, showErrors, copyButton, alertBox } from "./dom.js";

// terraformCall is the call of deploy/terraform, the reference's Terraform module as s3dest ships it.
export function terraformCall(ws, bucket, kmsKeyArn) {
  const lines = [
    'module "s3dest_aws_s3" {',
    '  source                = "github.com/s3dest/s3dest//deploy/terraform"',
    `  workspace_id          = ${JSON.stringify(ws.externalId)}`,
    `  intermediate_role_arn = ${JSON.stringify(ws.principalArn || "<S3DEST_INTERMEDIATE_ROLE_ARN>")}`,
    `  bucket_name           = ${JSON.stringify((bucket || "<YOUR_BUCKET_NAME>").split("/")[0])}`,
  ];
  if (kmsKeyArn) lines.push(`  kms_key_arn           = ${JSON.stringify(kmsKeyArn)}`);
  lines.push("}", "", "# Enter the module's role_arn output as the destination's IAM Role ARN.");
  return lines.join("\n");
}

function pretty(json) {
  try {
    return JSON.stringify(JSON.parse(json), null, 2);
  } catch {
    return json;
  }
}

// doc is a titled, copyable block of text.
function doc(id, title, text, note) {
  return h("section", { class: "doc", "aria-labelledby": `${id}-title` },
    h("div", { class: "doc-head" }, h("h3", { id: `${id}-title` }, title), copyButton(id, title.toLowerCase())),
    note ? h("p", { class: "hint" }, note) : null,
    h("pre", { id, tabindex: "0", "aria-label": title }, text));
}

export async function workspacePage(main, params) {
  const bucket = params.get("bucket") || "";
  const region = params.get("region") || "";
  const kms = params.get("kmsKeyArn") || "";
  const form = h("form", { class: "inline-form", "aria-label": "Fill in the policies" },
    field({ label: "Bucket (optional /prefix)", name: "bucket", value: bucket, hint: "Fills in the permission policy." }),
    field({ label: "Region", name: "region", value: region, hint: "Picks the ARN partition; empty means aws." }),
    field({ label: "KMS key ARN", name: "kmsKeyArn", value: kms, hint: "Only for a bucket encrypted with SSE-KMS." }),
    h("div", { class: "actions" }, h("button", { type: "submit" }, "Fill in")));
  main.replaceChildren(h("h1", {}, "Workspace"), form, h("p", {}, "Loading…"));
  form.addEventListener("submit", (ev) => {
    ev.preventDefault();
    const q = new URLSearchParams();
    for (const name of ["bucket", "region", "kmsKeyArn"]) {
      const v = form.elements[name].value.trim();
      if (v) q.set(name, v);
    }
    window.location.hash = `#/workspace?${q}`;
  });
  const q = new URLSearchParams();
  if (bucket) q.set("bucket", bucket);
  if (region) q.set("region", region);
  if (kms) q.set("kmsKeyArn", kms);
  let data;
  try {
    data = await api.get(`/workspace?${q}`);
  } catch (err) {
    if (err.status === 401) throw err;
    const rest = showErrors(form, err);
    main.lastChild.replaceWith(rest.length ? alertBox("error", rest.join(" ")) : h("p", {}, "Correct the field above."));
    return;
  }
  const s = data.iamSetup;
  main.lastChild.replaceWith(h("div", {},
    h("section", { class: "card", "aria-labelledby": "ids-title" },
      h("h2", { id: "ids-title" }, "Identifiers"),
      h("dl", { class: "facts" },
        h("dt", {}, "Workspace ID (External ID)"),
        h("dd", {}, h("code", { id: "external-id" }, s.externalId), " ", copyButton("external-id", "External ID")),
        h("dt", {}, "Our intermediate role (the Principal to trust)"),
        h("dd", {}, h("code", { id: "principal-arn" }, s.principalArn || "—"), " ", s.principalArn ? copyButton("principal-arn", "intermediate role ARN") : null))),
    h("section", { class: "card", "aria-labelledby": "steps-title" },
      h("h2", { id: "steps-title" }, "Set up your IAM role"),
      h("ol", {},
        h("li", {}, "Create an IAM role with the trust relationship below: it lets our role assume yours, only with your External ID."),
        h("li", {}, "Attach the permission policy below: it lets us write objects, with their ACL, under segment-logs/ of your bucket."),
        h("li", {}, "If the bucket uses SSE-KMS, attach the KMS policy too."),
        h("li", {}, "Create the destination with the role's ARN, then Validate it.")),
      doc("trust-policy", "Trust relationship", pretty(s.trustPolicy)),
      doc("permission-policy", "Permission policy", pretty(s.permissionPolicy)),
      doc("kms-policy", "KMS policy", pretty(s.kmsPolicy), "Only if the bucket is encrypted with a KMS key."),
      doc("terraform", "Terraform module call", terraformCall(s, bucket, kms),
        "The same role and policies as Terraform (deploy/terraform in the s3dest repository)."))));
}
