// API keys: list, create (the secret shown once), enable/disable, edit quota, delete.

import { api } from "./api.js";
import { announce, copyButton, field, fill, formDialog, h, heading, Invalid, pager, table, uid } from "./dom.js";
import { day, when } from "./format.js";
import { centsFromDollars, dollars, dollarsForInput } from "./money.js";

const PAGE_SIZE = 20;

function quotaInput(value) {
  const control = h("input", { name: "quota", inputmode: "decimal", autocomplete: "off", placeholder: "No limit" });
  control.value = value;
  return control;
}

/** Dollars typed in a quota box -> cents (string), null for "no limit". */
function quotaCents(control) {
  const text = control.value.trim();
  if (!text) return null;
  const cents = centsFromDollars(text);
  if (cents === null) throw new Invalid("Quota: write an amount in dollars, such as 5 or 0.50.", control);
  return cents;
}

function statusOf(key) {
  if (key.expiresAt && Date.parse(key.expiresAt) <= Date.now()) return "Expired";
  return key.status === "active" ? "Active" : "Disabled";
}

function secretView(form, box, answer) {
  const title = box.querySelector("h2");
  title.textContent = "Your new key";
  const secret = h("input", { readonly: true, class: "secret", spellcheck: "false", autocomplete: "off" });
  secret.value = answer.key;
  const warning = h("p", { class: "warning", id: uid("warn") }, "Copy this key now: you will not see it again. TokenSea keeps only a fingerprint of it, so nobody can show it to you later.");
  const done = h("button", { type: "button", onclick: () => box.close() }, "Done");
  form.replaceChildren(warning, field(`Key “${answer.apiKey.name}”`, secret), h("div", { class: "actions" }, copyButton(() => secret.value, warning.id), done));
  secret.focus();
  secret.select();
}

export async function keys(view, ctx) {
  const page = Math.max(1, Number.parseInt(ctx.params.get("page") || "1", 10) || 1);
  const list = h("div", { "aria-busy": "true" }, h("p", { class: "loading" }, "Loading…"));
  const create = h("button", { type: "button", onclick: () => openCreate() }, "Create key");
  view.append(
    heading("API keys"),
    h("p", {}, "A key lets a program call models through TokenSea. Calls are billed to your account, and to the key's own quota if it has one."),
    create,
    list,
  );
  const [first, plans, models] = await Promise.all([
    api("GET", "/api/tokens", { query: { page, pageSize: PAGE_SIZE } }),
    api("GET", "/api/plans"),
    api("GET", "/api/models"),
  ]);
  const planName = (id) => {
    const plan = plans.find((p) => p.id === id);
    return id === null || id === undefined ? "—" : plan ? plan.name : `Plan ${id}`;
  };

  async function reload() {
    draw(await api("GET", "/api/tokens", { query: { page, pageSize: PAGE_SIZE } }));
  }

  async function change(key, body, done) {
    try {
      await api("PATCH", `/api/tokens/${encodeURIComponent(key.id)}`, { body });
      announce(done);
      await reload();
    } catch (error) {
      announce(error.message);
    }
  }

  function actions(key, nameId) {
    const active = key.status === "active";
    return h(
      "div",
      { class: "row-actions" },
      h("button", { type: "button", class: "secondary", "aria-describedby": nameId, onclick: () => change(key, { status: active ? "disabled" : "active" }, `Key “${key.name}” ${active ? "disabled" : "enabled"}.`) }, active ? "Disable" : "Enable"),
      h("button", { type: "button", class: "secondary", "aria-describedby": nameId, onclick: () => editQuota(key) }, "Edit quota"),
      h("button", { type: "button", class: "danger", "aria-describedby": nameId, onclick: () => remove(key) }, "Delete"),
    );
  }

  function draw(answer) {
    list.setAttribute("aria-busy", "false");
    if (!answer.items.length) {
      list.replaceChildren(h("p", {}, page > 1 ? "No keys on this page." : "No keys yet. Create one to start calling models."));
      return;
    }
    const ids = new Map(answer.items.map((key) => [key.id, uid("key")]));
    fill(
      list,
      table(
        "Your API keys",
        [
          ["Name", (k) => h("span", { id: ids.get(k.id), class: "strong", text: k.name })],
          ["Key", (k) => h("code", { text: `${k.keyPrefix}…` })],
          ["Status", (k) => h("span", { class: `badge ${statusOf(k).toLowerCase()}`, text: statusOf(k) })],
          ["Used / quota", (k) => `${dollars(k.usedQuota)} of ${k.quota === null ? "no limit" : dollars(k.quota)}`],
          ["Models", (k) => (k.models === null ? "All" : k.models.join(", ") || "None")],
          ["Plan", (k) => planName(k.planId)],
          ["Expires", (k) => (k.expiresAt ? day(k.expiresAt) : "Never")],
          ["Last used", (k) => (k.lastUsedAt ? when(k.lastUsedAt) : "Never")],
          ["Actions", (k) => actions(k, ids.get(k.id))],
        ],
        answer.items,
      ),
      answer.total > PAGE_SIZE ? pager(page, PAGE_SIZE, answer.total, (n) => ctx.go("keys", new URLSearchParams({ page: n })), "keys") : null,
    );
  }

  function openCreate() {
    const name = h("input", { name: "name", maxlength: 64, autocomplete: "off", required: true });
    const plan = h("select", { name: "planId" }, h("option", { value: "" }, "No plan"), plans.map((p) => h("option", { value: String(p.id) }, `${p.name} (×${p.priceMultiplier})`)));
    const quota = quotaInput("");
    const expires = h("input", { name: "expiresAt", type: "date" });
    const boxes = models.map((m) => h("label", { class: "check" }, h("input", { type: "checkbox", name: "models", value: m.id }), m.id));
    const modelHint = uid("hint");
    let created = null;
    formDialog("Create key", {
      submit: "Create",
      fields: [
        field("Name", name, "So you can tell your keys apart, e.g. laptop or ci."),
        field("Plan", plan),
        field("Quota", quota, "Dollars this key may spend in all. Leave empty for no limit of its own (your account's quota still applies)."),
        h("fieldset", { class: "models", "aria-describedby": modelHint }, h("legend", {}, "Models"), h("p", { class: "hint", id: modelHint }, "Leave all unticked to allow every model (or every model of the plan)."), h("div", { class: "checks" }, boxes)),
        field("Expires", expires, "Optional. The key stops working at the end of this day (UTC)."),
      ],
      action: async (form, box) => {
        if (!name.value.trim()) throw new Invalid("Name: give the key a name.", name);
        const body = { name: name.value.trim() };
        if (plan.value) body.planId = Number(plan.value);
        const cents = quotaCents(quota);
        if (cents !== null) body.quota = cents;
        const chosen = boxes.map((label) => label.querySelector("input")).filter((box_) => box_.checked).map((box_) => box_.value);
        if (chosen.length) body.models = chosen;
        if (expires.value) body.expiresAt = expires.value;
        created = await api("POST", "/api/tokens", { body });
        box.addEventListener("close", () => {
          created = null; // the secret leaves memory with the dialog
          reload().catch((error) => announce(error.message));
        });
        secretView(form, box, created);
        return true;
      },
    });
  }

  function editQuota(key) {
    const quota = quotaInput(key.quota === null ? "" : dollarsForInput(key.quota));
    formDialog(`Edit quota of “${key.name}”`, {
      submit: "Save",
      fields: [field("Quota", quota, `Dollars this key may spend in all; it has used ${dollars(key.usedQuota)}. Leave empty for no limit of its own.`)],
      action: async () => {
        await api("PATCH", `/api/tokens/${encodeURIComponent(key.id)}`, { body: { quota: quotaCents(quota) } });
        announce(`Quota of “${key.name}” saved.`);
        await reload();
      },
    });
  }

  function remove(key) {
    formDialog(`Delete “${key.name}”?`, {
      submit: "Delete",
      danger: true,
      fields: [h("p", {}, `Programs using ${key.keyPrefix}… will be refused at once. This cannot be undone.`)],
      action: async () => {
        await api("DELETE", `/api/tokens/${encodeURIComponent(key.id)}`);
        announce(`Key “${key.name}” deleted.`);
        await reload();
      },
    });
  }

  draw(first);
}
