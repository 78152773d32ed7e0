// Sign in and Create account: the only pages without a session.

import { api, session } from "./api.js";
import { alertBox, field, h, heading } from "./dom.js";

const USERNAME = /^[A-Za-z0-9]{3,32}$/;

function input(name, props = {}) {
  return h("input", { name, autocapitalize: "none", spellcheck: "false", ...props });
}

/** Show an error from the API, and put focus on the field it is about, if any. */
function fail(form, box, error) {
  box.show(error.message);
  const target = error.param ? form.querySelector(`[name="${CSS.escape(error.param)}"]`) : null;
  for (const control of form.querySelectorAll("[aria-invalid]")) control.removeAttribute("aria-invalid");
  if (target) {
    target.setAttribute("aria-invalid", "true");
    target.focus();
  }
}

function busy(form, on) {
  for (const control of form.querySelectorAll("button, input")) control.disabled = on;
  form.setAttribute("aria-busy", on ? "true" : "false");
}

export function signIn(view, ctx) {
  const box = alertBox();
  const username = input("username", { autocomplete: "username", required: true });
  const password = input("password", { type: "password", autocomplete: "current-password", required: true });
  const form = h(
    "form",
    { class: "card narrow", novalidate: true },
    ctx.flash ? h("p", { class: "notice", role: "status", text: ctx.flash }) : null,
    box,
    field("Username", username),
    field("Password", password),
    h("button", { type: "submit" }, "Sign in"),
  );
  form.addEventListener("submit", async (event) => {
    event.preventDefault();
    if (!username.value.trim() || !password.value) {
      box.show("Enter your username and password.");
      (username.value.trim() ? password : username).focus();
      return;
    }
    busy(form, true);
    try {
      const answer = await api("POST", "/api/auth/login", { body: { username: username.value.trim(), password: password.value } });
      session.set(answer.token, answer.expiresAt);
      ctx.signedIn(answer.user);
    } catch (error) {
      busy(form, false);
      fail(form, box, error);
    }
  });
  view.append(
    heading("Sign in"),
    form,
    h("p", { class: "aside" }, "New here? ", h("a", { href: "#/register" }, "Create account"), "."),
  );
  username.focus();
}

export function register(view, ctx) {
  const box = alertBox();
  const username = input("username", { autocomplete: "username", required: true, maxlength: 32 });
  const password = input("password", { type: "password", autocomplete: "new-password", required: true, minlength: 6 });
  const email = input("email", { type: "email", autocomplete: "email" });
  const invite = input("inviteCode", { maxlength: 32 });
  invite.value = ctx.invite || "";
  const form = h(
    "form",
    { class: "card narrow", novalidate: true },
    box,
    field("Username", username, "3 to 32 letters or digits."),
    field("Password", password, "At least 6 characters."),
    field("Email (optional)", email),
    field("Invite code", invite, "Optional. Filled in when you follow an invite link."),
    h("button", { type: "submit" }, "Create account"),
  );
  form.addEventListener("submit", async (event) => {
    event.preventDefault();
    const name = username.value.trim();
    if (!USERNAME.test(name)) {
      fail(form, box, { message: "Username: use 3 to 32 letters or digits.", param: "username" });
      return;
    }
    if (password.value.length < 6) {
      fail(form, box, { message: "Password: use at least 6 characters.", param: "password" });
      return;
    }
    const body = { username: name, password: password.value };
    if (email.value.trim()) body.email = email.value.trim();
    if (invite.value.trim()) body.inviteCode = invite.value.trim();
    busy(form, true);
    try {
      const answer = await api("POST", "/api/auth/register", { body });
      session.set(answer.token);
      ctx.signedIn(answer.user);
    } catch (error) {
      busy(form, false);
      fail(form, box, error);
    }
  });
  view.append(
    heading("Create account"),
    form,
    h("p", { class: "aside" }, "Have an account? ", h("a", { href: "#/signin" }, "Sign in"), "."),
  );
  username.focus();
}
