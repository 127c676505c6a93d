// The s3dest console: a sign-in with the admin token, then one page per hash route. Every page reads and
// writes through the admin REST API (api.js) with the session the sign-in started.
import { resumeSession, signIn, signOut } from "./api.js";
import { h, field, showErrors, alertBox } from "./dom.js";
import { workspacePage } from "./workspace.js";
import { sourcesPage } from "./sources.js";
import { destinationsPage, destinationPage } from "./destinations.js";
import { migratePage } from "./migrate.js";

const main = document.getElementById("main");
const nav = document.getElementById("nav");
let leaving = new AbortController();

const routes = [
  [/^\/workspace$/, (p) => workspacePage(main, p)],
  [/^\/sources$/, () => sourcesPage(main)],
  [/^\/destinations$/, () => destinationsPage(main)],
  [/^\/destinations\/([^/]+)$/, (p, m, signal) => destinationPage(main, decodeURIComponent(m[1]), signal)],
  [/^\/migrate$/, (p, m, signal) => migratePage(main, signal)],
];

function signInPage() {
  nav.hidden = true;
  const form = h("form", { class: "card signin", "aria-labelledby": "signin-title", novalidate: true },
    h("h1", { id: "signin-title" }, "Sign in"),
    h("p", {}, "Enter the admin token (", h("code", {}, "S3DEST_ADMIN_TOKEN"), "; ", h("code", {}, "s3dest dev"), " keeps it in ",
      h("code", {}, ".s3dest/secrets.json"), "). The console keeps a session cookie, not the token."),
    field({ label: "Admin token", name: "token", type: "password", required: true, attrs: { autocomplete: "current-password" } }),
    h("div", { class: "actions" }, h("button", { type: "submit" }, "Sign in")),
    h("div", { class: "form-alert" }));
  form.addEventListener("submit", async (ev) => {
    ev.preventDefault();
    const token = form.elements.token.value;
    if (!token) {
      showErrors(form, { errors: [{ message: "token: the admin token is required" }] });
      return;
    }
    try {
      await signIn(token);
    } catch (err) {
      const rest = showErrors(form, err);
      if (rest.length) form.querySelector(".form-alert").replaceChildren(alertBox("error", rest.join(" ")));
      return;
    }
    if (!window.location.hash || window.location.hash === "#/signin") window.location.hash = "#/workspace";
    else route();
  });
  main.replaceChildren(form);
  form.elements.token.focus();
}

async function route() {
  leaving.abort();
  leaving = new AbortController();
  const [path, query] = (window.location.hash.slice(1) || "/workspace").split("?");
  const params = new URLSearchParams(query || "");
  nav.hidden = false;
  for (const a of nav.querySelectorAll("a")) {
    const here = path === a.getAttribute("href").slice(1) || path.startsWith(`${a.getAttribute("href").slice(1)}/`);
    if (here) a.setAttribute("aria-current", "page");
    else a.removeAttribute("aria-current");
  }
  const found = routes.find(([re]) => re.test(path));
  if (!found) {
    main.replaceChildren(h("h1", {}, "Not found"), h("p", {}, "No such page: ", h("code", {}, path)));
    return;
  }
  main.replaceChildren(h("p", {}, "Loading…"));
  main.setAttribute("aria-busy", "true");
  try {
    await found[1](params, found[0].exec(path), leaving.signal);
  } catch (err) {
    if (err.status === 401) return; // signed out: the sign-in page is shown
    main.replaceChildren(h("h1", {}, "Something went wrong"), alertBox("error", err.message));
  } finally {
    main.removeAttribute("aria-busy");
  }
  const title = main.querySelector("h1");
  document.title = `${title ? title.textContent : "s3dest"} · s3dest console`;
  main.focus({ preventScroll: true });
}

window.addEventListener("s3dest:signed-out", () => {
  leaving.abort();
  signInPage();
});
window.addEventListener("hashchange", () => route());
document.getElementById("sign-out").addEventListener("click", async () => {
  await signOut();
  leaving.abort();
  history.replaceState(null, "", window.location.pathname); // no hashchange: nothing to route to
  signInPage();
});

if (await resumeSession()) route();
else signInPage();
