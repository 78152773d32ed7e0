// Admin: users (search, status, role, quota, used), grants with a reason, and plans.
// A grant carries an Idempotency-Key made when its dialog opens, so however often the
// form is sent (a double click, a retry after a timeout) the quota is granted once.

import { api, idempotencyKey } from "./api.js";
import { announce, field, fill, formDialog, h, heading, Invalid, pager, table, uid } from "./dom.js";
import { count } from "./format.js";
import { centsFromDollars, dollars } from "./money.js";

const PAGE_SIZE = 20;

export async function admin(view, ctx) {
  const params = ctx.params;
  const page = Math.max(1, Number.parseInt(params.get("page") || "1", 10) || 1);
  const search = (params.get("q") || "").slice(0, 64);
  const query = h("input", { name: "q", type: "search", maxlength: 64, autocomplete: "off" });
  query.value = search;
  const searchForm = h("form", { class: "filters", role: "search", "aria-label": "Find users" }, field("Search", query, "Part of a username, name or email."), h("div", { class: "actions" }, h("button", { type: "submit" }, "Search")));
  searchForm.addEventListener("submit", (event) => {
    event.preventDefault();
    ctx.go("admin", new URLSearchParams(query.value.trim() ? { q: query.value.trim() } : {}));
  });
  const users = h("div", { "aria-busy": "true" }, h("p", { class: "loading" }, "Loading…"));
  const plans = h("div");
  view.append(heading("Admin"), h("h2", {}, "Users"), searchForm, users, h("h2", {}, "Plans"), plans);

  const [me, first, planList] = await Promise.all([
    ctx.me,
    api("GET", "/api/admin/users", { query: { page, pageSize: PAGE_SIZE, q: search } }),
    api("GET", "/api/plans"),
  ]);

  async function reload() {
    draw(await api("GET", "/api/admin/users", { query: { page, pageSize: PAGE_SIZE, q: search } }));
  }

  async function change(user, body, done) {
    try {
      await api("PATCH", `/api/admin/users/${encodeURIComponent(user.id)}`, { body });
      announce(done);
      await reload();
    } catch (error) {
      announce(error.message);
    }
  }

  function grant(user) {
    const amount = h("input", { name: "amount", inputmode: "decimal", autocomplete: "off", required: true });
    const reason = h("input", { name: "reason", maxlength: 200, autocomplete: "off", required: true });
    const cents = h("p", { class: "hint", "aria-live": "polite" });
    amount.addEventListener("input", () => {
      const value = centsFromDollars(amount.value);
      cents.textContent = value === null ? "" : `That is ${value} cents.`;
    });
    const key = idempotencyKey(); // one per dialog: resending it grants nothing more
    formDialog(`Grant quota to ${user.username}`, {
      submit: "Grant",
      fields: [field("Amount", amount, "In dollars, e.g. 5 or 0.50."), cents, field("Reason", reason, "Kept in the ledger with the grant.")],
      action: async () => {
        const value = centsFromDollars(amount.value);
        if (value === null || /^[0.]+$/.test(value)) throw new Invalid("Amount: write a positive amount in dollars, such as 5 or 0.50.", amount);
        if (!reason.value.trim()) throw new Invalid("Reason: say why, for the ledger.", reason);
        const answer = await api("POST", `/api/admin/users/${encodeURIComponent(user.id)}/grants`, {
          body: { amount: value, reason: reason.value.trim() },
          headers: { "idempotency-key": key },
        });
        announce(answer.recorded ? `Granted ${dollars(value)} to ${user.username}.` : `That grant was already recorded; nothing more was granted.`);
        await reload();
      },
    });
  }

  function actions(user, nameId) {
    const self = user.id === me.id; // an admin cannot lock themselves out from here
    const active = user.status === "active";
    const isAdmin = user.role === "admin";
    return h(
      "div",
      { class: "row-actions" },
      h("button", { type: "button", "aria-describedby": nameId, onclick: () => grant(user) }, "Grant"),
      h("button", { type: "button", class: "secondary", "aria-describedby": nameId, disabled: self, onclick: () => change(user, { status: active ? "disabled" : "active" }, `${user.username} ${active ? "disabled" : "enabled"}.`) }, active ? "Disable" : "Enable"),
      h("button", { type: "button", class: "secondary", "aria-describedby": nameId, disabled: self, onclick: () => change(user, { role: isAdmin ? "user" : "admin" }, `${user.username} is now ${isAdmin ? "a user" : "an administrator"}.`) }, isAdmin ? "Make user" : "Make admin"),
    );
  }

  function draw(answer) {
    users.setAttribute("aria-busy", "false");
    if (!answer.items.length) {
      users.replaceChildren(h("p", {}, search ? "No user matches that search." : "No users."));
      return;
    }
    const ids = new Map(answer.items.map((user) => [user.id, uid("user")]));
    fill(
      users,
      table(
        search ? `Users matching “${search}”` : "Users",
        [
          ["Username", (u) => h("span", { id: ids.get(u.id), class: "strong", text: u.username })],
          ["Name", (u) => u.name || "—"],
          ["Email", (u) => u.email || "—"],
          ["Role", (u) => (u.role === "admin" ? "Admin" : "User")],
          ["Status", (u) => h("span", { class: `badge ${u.status}`, text: u.status === "active" ? "Active" : "Disabled" })],
          ["Quota", (u) => dollars(u.quota)],
          ["Used", (u) => dollars(u.usedQuota)],
          ["Requests", (u) => count(u.requestCount)],
          ["Actions", (u) => actions(u, ids.get(u.id))],
        ],
        answer.items,
      ),
      answer.total > PAGE_SIZE
        ? pager(page, PAGE_SIZE, answer.total, (n) => ctx.go("admin", new URLSearchParams({ ...(search ? { q: search } : {}), page: String(n) })), "users")
        : null,
    );
  }

  draw(first);
  plans.replaceChildren(
    planList.length
      ? table("Plans", [["Id", (p) => String(p.id)], ["Name", (p) => p.name], ["Models", (p) => p.models.join(", ")], ["Price multiplier", (p) => `×${p.priceMultiplier}`]], planList)
      : h("p", {}, "No plans are configured (see [[plans]] in the configuration)."),
  );
}
