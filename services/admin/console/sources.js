// The sources page: list, create, enable and disable sources; create, rotate (with grace) and revoke
// their write keys.
import { api } from "./api.js";
import { h, field, showErrors, clearErrors, alertBox, toast, when, uid } from "./dom.js";

export async function listAll(kind) {
  const data = await api.get(`/${kind}?pagination.count=200`);
  return data[kind] || [];
}

function createForm(onCreated) {
  const form = h("form", { class: "card", "aria-labelledby": "new-source-title", novalidate: true },
    h("h2", { id: "new-source-title" }, "Create a source"),
    h("div", { class: "row" },
      field({ label: "Name", name: "name", hint: "Shown in lists." }),
      field({ label: "Slug", name: "slug", required: true, hint: "Lowercase letters, digits, - and _." })),
    h("div", { class: "actions" }, h("button", { type: "submit" }, "Create source")),
    h("div", { class: "form-alert" }));
  form.addEventListener("submit", async (ev) => {
    ev.preventDefault();
    clearErrors(form);
    form.querySelector(".form-alert").replaceChildren();
    try {
      const data = await api.post("/sources", {
        name: form.elements.name.value.trim(), slug: form.elements.slug.value.trim(), enabled: true,
      });
      toast(`Created source ${data.source.id}.`);
      form.reset();
      onCreated(data.source);
    } catch (err) {
      const rest = showErrors(form, err);
      if (rest.length) form.querySelector(".form-alert").replaceChildren(alertBox("error", rest.join(" ")));
    }
  });
  return form;
}

function keyRow(src, key, retiring, refresh) {
  const graceId = uid("grace");
  return h("li", { class: "key" },
    h("code", {}, key),
    retiring ? h("span", { class: "badge warn" }, `retiring, works until ${when(retiring)}`) : h("span", { class: "badge ok" }, "current"),
    retiring ? null : h("span", { class: "grace" },
      h("label", { for: graceId }, "Grace (hours)"),
      h("input", { id: graceId, type: "number", min: "0", max: "720", step: "1", value: "24", class: "narrow" }),
      h("button", {
        type: "button", class: "secondary", "aria-label": `Rotate write key ${key}`,
        onclick: () => act(async () => {
          const hours = Number(document.getElementById(graceId).value || "0");
          const data = await api.post(`/sources/${encodeURIComponent(src.id)}/writekey/${encodeURIComponent(key)}/rotate`,
            { gracePeriod: `${Math.round(hours * 3600)}s` });
          toast(`New write key ${data.writeKey}; the old one works for ${hours} h.`);
        }, refresh),
      }, "Rotate")),
    h("button", {
      type: "button", class: "danger", "aria-label": `Revoke write key ${key}`,
      onclick: () => {
        if (!window.confirm(`Revoke ${key} now? Events sent with it get 401 from now on.`)) return;
        act(async () => {
          await api.del(`/sources/${encodeURIComponent(src.id)}/writekey/${encodeURIComponent(key)}`);
          toast(`Revoked ${key}.`);
        }, refresh);
      },
    }, "Revoke"));
}

// act runs a call, says its error, and then refreshes the page.
async function act(call, refresh) {
  try {
    await call();
  } catch (err) {
    toast(err.message);
    document.getElementById("page-alert").replaceChildren(alertBox("error", err.message));
    return;
  }
  await refresh();
}

function sourceCard(src, refresh) {
  const titleId = uid("source");
  return h("section", { class: "card source", "aria-labelledby": titleId, "data-source-id": src.id },
    h("div", { class: "card-head" },
      h("h3", { id: titleId }, src.name || src.slug, " ", h("span", { class: "muted" }, src.slug)),
      h("span", { class: `badge ${src.enabled ? "ok" : "off"}` }, src.enabled ? "enabled" : "disabled"),
      h("button", {
        type: "button", class: "secondary", "aria-label": `${src.enabled ? "Disable" : "Enable"} source ${src.slug}`,
        onclick: () => act(() => api.patch(`/sources/${encodeURIComponent(src.id)}`, { enabled: !src.enabled }), refresh),
      }, src.enabled ? "Disable" : "Enable")),
    h("p", {}, "ID ", h("code", {}, src.id)),
    h("h4", {}, "Write keys"),
    h("ul", { class: "keys" },
      (src.writeKeys || []).map((k) => keyRow(src, k, null, refresh)),
      (src.retiringWriteKeys || []).map((k) => keyRow(src, k.writeKey, k.expiresAt, refresh))),
    h("button", {
      type: "button", class: "secondary", "aria-label": `Add a write key to source ${src.slug}`,
      onclick: () => act(async () => {
        const data = await api.post(`/sources/${encodeURIComponent(src.id)}/writekey`);
        toast(`New write key ${data.writeKey}.`);
      }, refresh),
    }, "Add write key"));
}

export async function sourcesPage(main) {
  const list = h("div", { class: "list" }, h("p", {}, "Loading…"));
  const refresh = async () => {
    const sources = await listAll("sources");
    list.replaceChildren(...(sources.length ? sources.map((s) => sourceCard(s, refresh)) : [h("p", {}, "No sources yet.")]));
  };
  main.replaceChildren(h("h1", {}, "Sources"), h("div", { id: "page-alert" }), createForm(refresh),
    h("h2", {}, "Your sources"), list);
  await refresh();
}
