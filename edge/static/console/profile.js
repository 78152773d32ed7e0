// Profile: name and email (editable), role, and the invite code with its link.

import { api } from "./api.js";
import { alertBox, announce, copyButton, field, h, heading, uid } from "./dom.js";
import { day } from "./format.js";

export async function profile(view, ctx) {
  view.append(heading("Profile"));
  const me = await ctx.me;
  const name = h("input", { name: "name", maxlength: 64, autocomplete: "name" });
  const email = h("input", { name: "email", type: "email", autocomplete: "email" });
  name.value = me.name || "";
  email.value = me.email || "";
  const problem = alertBox();
  const save = h("button", { type: "submit" }, "Save");
  const form = h("form", { class: "card narrow", novalidate: true, "aria-label": "Your details" }, problem, field("Name", name), field("Email", email), save);
  form.addEventListener("submit", async (event) => {
    event.preventDefault();
    const body = {};
    if (name.value.trim()) body.name = name.value.trim();
    if (email.value.trim()) body.email = email.value.trim();
    save.disabled = true;
    try {
      await api("PATCH", "/api/user/self", { body });
      problem.show("");
      announce("Your details are saved.");
    } catch (error) {
      problem.show(error.message);
    } finally {
      save.disabled = false;
    }
  });
  const link = `${window.location.origin}/?invite=${encodeURIComponent(me.inviteCode)}`;
  const linkBox = h("input", { readonly: true, class: "secret" });
  linkBox.value = link;
  const inviteNote = uid("invite");
  view.append(
    h(
      "dl",
      { class: "facts" },
      h("dt", {}, "Username"),
      h("dd", { text: me.username }),
      h("dt", {}, "Role"),
      h("dd", { text: me.role === "admin" ? "Administrator" : "User" }),
      h("dt", {}, "Member since"),
      h("dd", { text: day(me.createdAt) }),
    ),
    form,
    h("h2", {}, "Invite"),
    h("p", { id: inviteNote }, "Whoever creates an account with your invite code, or through your invite link, is registered as invited by you."),
    h("dl", { class: "facts" }, h("dt", {}, "Invite code"), h("dd", {}, h("code", { text: me.inviteCode }))),
    h("div", { class: "copy-row" }, field("Invite link", linkBox), copyButton(() => link, inviteNote)),
  );
}
