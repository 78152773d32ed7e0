// The console's shell: the navigation, the session, and a router over location.hash
// (#/keys, #/logs?model=...). Hash routes keep / the only page the server serves, and
// nothing secret ever goes in them: filters and page numbers only.

import { admin } from "./admin.js";
import { api, onExpired, session } from "./api.js";
import { dashboard } from "./dashboard.js";
import { h } from "./dom.js";
import { keys } from "./keys.js";
import { logs } from "./logs.js";
import { profile } from "./profile.js";
import { quickStart } from "./quickstart.js";
import { register, signIn } from "./signin.js";

const PAGES = [
  { name: "dashboard", title: "Dashboard", render: dashboard },
  { name: "keys", title: "API keys", render: keys },
  { name: "logs", title: "Usage logs", render: logs },
  { name: "quickstart", title: "Quick start", render: quickStart },
  { name: "profile", title: "Profile", render: profile },
  { name: "admin", title: "Admin", render: admin, admin: true },
];
const PUBLIC = { signin: { title: "Sign in", render: signIn }, register: { title: "Create account", render: register } };
const EXPIRED = "Your session has expired. Sign in again to continue.";

const state = {
  flash: "",
  invite: new URLSearchParams(window.location.search).get("invite") || "",
  navigation: 0,
};

function current() {
  const hash = window.location.hash.startsWith("#/") ? window.location.hash.slice(2) : "";
  const [name, query = ""] = hash.split("?");
  return { name, params: new URLSearchParams(query) };
}

/** Go to a page; renders even when the hash is already there. */
function navigate(name, params) {
  const query = params ? params.toString() : "";
  const target = `#/${name}${query ? `?${query}` : ""}`;
  if (window.location.hash === target) render();
  else window.location.hash = target;
}

function signedIn(user) {
  state.invite = "";
  navigate("dashboard");
  return user;
}

function signOut() {
  session.clear();
  state.flash = "You have signed out.";
  navigate("signin");
}

function shell(user, active) {
  const nav = document.getElementById("nav");
  const account = document.getElementById("account");
  if (!user) {
    nav.replaceChildren();
    account.replaceChildren();
    return;
  }
  const links = PAGES.filter((page) => !page.admin || user.role === "admin").map((page) =>
    h("a", { href: `#/${page.name}`, "aria-current": page === active ? "page" : null }, page.title),
  );
  nav.replaceChildren(...links);
  account.replaceChildren(
    h("span", { class: "who", text: user.username }),
    h("button", { type: "button", class: "secondary", onclick: signOut }, "Sign out"),
  );
}

function notFound(view) {
  view.append(h("h1", { tabindex: "-1" }, "Page not found"), h("p", {}, h("a", { href: "#/dashboard" }, "Go to the dashboard")));
}

function failed(view, error) {
  view.append(
    h("p", { class: "alert", role: "alert", text: `This page could not be loaded. ${error.message}` }),
    h("button", { type: "button", onclick: () => render() }, "Try again"),
  );
}

async function render() {
  if (window.location.hash && !window.location.hash.startsWith("#/")) return; // an in-page link (Skip to content)
  const { name, params } = current();
  const navigation = ++state.navigation;
  const main = document.getElementById("main");
  const view = h("div", { class: "view" });
  main.replaceChildren(view);
  if (session.expired()) {
    session.clear();
    state.flash = EXPIRED;
  }
  if (!session.get()) {
    shell(null);
    const chosen = name === "register" || (!name && state.invite) ? "register" : "signin";
    if (name !== chosen) window.history.replaceState(null, "", `#/${chosen}`);
    const page = PUBLIC[chosen];
    document.title = `${page.title} · TokenSea`;
    const flash = state.flash;
    state.flash = "";
    page.render(view, { flash, invite: state.invite, signedIn });
    return;
  }
  if (!name || PUBLIC[name]) {
    window.history.replaceState(null, "", "#/dashboard");
    render();
    return;
  }
  const page = PAGES.find((candidate) => candidate.name === name);
  const me = api("GET", "/api/user/self");
  me.then((user) => navigation === state.navigation && shell(user, page)).catch(() => {});
  document.title = `${page ? page.title : "Page not found"} · TokenSea`;
  try {
    if (!page || (page.admin && (await me).role !== "admin")) {
      notFound(view); // a non-admin is never shown the admin page, nor told it exists
    } else {
      await page.render(view, { me, params, go: navigate, current: () => navigation === state.navigation });
    }
  } catch (error) {
    if (navigation === state.navigation && error.status !== 401) failed(view, error);
  }
  if (navigation === state.navigation && navigation > 1) {
    const title = view.querySelector("h1");
    if (title && !view.contains(document.activeElement)) title.focus();
  }
}

onExpired(() => {
  if (current().name === "signin") return; // several calls failed at once: go once
  state.flash = EXPIRED;
  navigate("signin");
});
window.addEventListener("hashchange", () => render());
// Signing in or out in another tab changes this one too.
window.addEventListener("storage", (event) => {
  if (event.key === "tokensea.session") render();
});
render();
