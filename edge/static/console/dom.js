// Building the page from data without ever parsing data as markup: every string
// becomes a text node or an attribute value, never HTML. (The CSP forbids inline
// script as a second line of defence; this is the first.)

const SVG = "http://www.w3.org/2000/svg";
let counter = 0;

/** A fresh id for label/description links. */
export function uid(prefix = "id") {
  counter += 1;
  return `${prefix}-${counter}`;
}

function build(el, props, children) {
  for (const [name, value] of Object.entries(props || {})) {
    if (value === undefined || value === null || value === false) continue;
    if (name === "class") el.setAttribute("class", value);
    else if (name === "text") el.textContent = value;
    else if (name.startsWith("on")) {
      // Handlers are functions; a string here would be an inline handler (and the CSP would refuse it).
      if (typeof value !== "function") throw new TypeError(`${name} must be a function`);
      el.addEventListener(name.slice(2), value);
    } else if (name === "href" && !/^[#/]/.test(String(value))) {
      throw new TypeError("links stay on this origin"); // never a script URL or another site
    } else el.setAttribute(name, value === true ? "" : String(value));
  }
  append(el, children);
  return el;
}

/** ``h("p", {class: "x"}, "text", child)``: an element with attributes and children. */
export function h(tag, props, ...children) {
  return build(document.createElement(tag), props, children);
}

/** The same for SVG elements. */
export function s(tag, props, ...children) {
  return build(document.createElementNS(SVG, tag), props, children);
}

/** Append strings (as text), nodes and arrays of them; skip null and false. */
export function append(el, children) {
  for (const child of children.flat(Infinity)) {
    if (child === null || child === undefined || child === false) continue;
    el.append(child instanceof Node ? child : document.createTextNode(String(child)));
  }
  return el;
}

/** Replace an element's children (null and false skipped, unlike replaceChildren). */
export function fill(el, ...children) {
  el.replaceChildren();
  return append(el, children);
}

/** A labelled control: ``<label>``, the control, an optional hint tied by aria-describedby. */
export function field(label, control, hint) {
  const id = control.id || uid("f");
  control.id = id;
  const parts = [h("label", { for: id, text: label }), control];
  if (hint) {
    const hintId = uid("hint");
    const described = control.getAttribute("aria-describedby");
    control.setAttribute("aria-describedby", described ? `${described} ${hintId}` : hintId);
    parts.push(h("p", { class: "hint", id: hintId }, hint));
  }
  return h("div", { class: "field" }, parts);
}

/** A message area for a form's errors: screen readers hear it when it changes. */
export function alertBox() {
  const box = h("p", { class: "alert", role: "alert", hidden: true });
  box.show = (message) => {
    box.textContent = message;
    box.hidden = !message;
  };
  return box;
}

/** Say something politely in the page's status area (visible, and read aloud). */
export function announce(message) {
  const status = document.getElementById("status");
  if (!status) return;
  status.textContent = "";
  // Emptied first, so the same message twice is announced twice.
  setTimeout(() => {
    status.textContent = message;
  }, 30);
}

/** A table with a caption, column headers and one row per item. ``columns`` are
 * ``[label, item => content]``; the label is repeated on each cell for narrow screens. */
export function table(caption, columns, items, className) {
  const head = h("tr", {}, columns.map(([label]) => h("th", { scope: "col", text: label })));
  const rows = items.map((item) => h("tr", {}, columns.map(([label, cell]) => h("td", { "data-label": label }, cell(item)))));
  return h(
    "div",
    { class: "table-wrap" },
    h("table", { class: className }, h("caption", { text: caption }), h("thead", {}, head), h("tbody", {}, rows)),
  );
}

/** Previous/next buttons for a paginated list. */
export function pager(page, pageSize, total, go, noun = "items") {
  const pages = Math.max(1, Math.ceil(total / pageSize));
  const previous = h("button", { type: "button", class: "secondary", disabled: page <= 1, onclick: () => go(page - 1) }, "Previous");
  const next = h("button", { type: "button", class: "secondary", disabled: page >= pages, onclick: () => go(page + 1) }, "Next");
  return h(
    "nav",
    { class: "pager", "aria-label": "Pages" },
    previous,
    h("span", {}, `Page ${page} of ${pages} (${total.toLocaleString("en-US")} ${noun})`),
    next,
  );
}

/** Copy text to the clipboard, also where the async clipboard API is missing (plain
 * http on another host is not a secure context). */
export async function copy(text) {
  try {
    if (navigator.clipboard && window.isSecureContext) {
      await navigator.clipboard.writeText(text);
      return true;
    }
  } catch {
    // fall through to the selection-based copy
  }
  const scratch = h("textarea", { class: "offscreen", readonly: true, "aria-hidden": "true" });
  scratch.value = text;
  document.body.append(scratch);
  scratch.select();
  let done = false;
  try {
    done = document.execCommand("copy");
  } catch {
    done = false;
  }
  scratch.remove();
  return done;
}

/** A "Copy" button for a value; says whether it worked. */
export function copyButton(text, describedBy) {
  return h(
    "button",
    {
      type: "button",
      class: "secondary",
      "aria-describedby": describedBy,
      onclick: async () => announce((await copy(text())) ? "Copied to the clipboard." : "Copying failed: select the text and copy it by hand."),
    },
    "Copy",
  );
}

/** A modal dialog holding a form. ``build(form, close)`` fills it; ``onsubmit`` runs on
 * submit with the form. Esc and Cancel close it; focus returns to the opener. */
export function dialog(title, build) {
  const titleId = uid("dlg");
  const form = h("form", { method: "dialog", novalidate: true });
  const box = h("dialog", { "aria-labelledby": titleId }, h("h2", { id: titleId, text: title }), form);
  const opener = document.activeElement;
  const close = () => {
    box.close();
  };
  box.addEventListener("close", () => {
    box.remove();
    // Back to the button that opened it; if its row was redrawn meanwhile, to the page's heading.
    const target = opener && opener.isConnected ? opener : document.querySelector("main h1");
    if (target) target.focus();
  });
  build(form, close, box);
  document.body.append(box);
  box.showModal();
  return box;
}

/** A page's heading, focusable so navigation can move focus to it. */
export function heading(text) {
  return h("h1", { tabindex: "-1", text });
}

/** A problem with what was typed, pointing at the control to fix. */
export class Invalid extends Error {
  constructor(message, control) {
    super(message);
    this.control = control;
  }
}

/**
 * A dialog with a form: ``fields`` (nodes), a submit button labelled ``submit`` and
 * Cancel. ``action(form)`` runs on submit; the dialog closes when it resolves, unless
 * it resolves to true. While it runs the form ignores further submits, so a double
 * click acts once. Errors show in the dialog, on the field they are about.
 */
export function formDialog(title, { fields = [], submit, danger = false, action }) {
  return dialog(title, (form, close, box) => {
    const problem = alertBox();
    const submitButton = h("button", { type: "submit", class: danger ? "danger" : null }, submit);
    form.append(problem, ...fields, h("div", { class: "actions" }, submitButton, h("button", { type: "button", class: "secondary", onclick: close }, "Cancel")));
    let running = false;
    form.addEventListener("submit", async (event) => {
      event.preventDefault();
      if (running) return;
      running = true;
      submitButton.disabled = true;
      form.setAttribute("aria-busy", "true");
      for (const control of form.querySelectorAll("[aria-invalid]")) control.removeAttribute("aria-invalid");
      try {
        const keepOpen = await action(form, box);
        if (!keepOpen) close();
      } catch (error) {
        problem.show(error.message);
        const control = error.control || (error.param ? form.querySelector(`[name="${CSS.escape(error.param)}"]`) : null);
        if (control) {
          control.setAttribute("aria-invalid", "true");
          control.focus();
        }
      } finally {
        running = false;
        submitButton.disabled = false;
        form.setAttribute("aria-busy", "false");
      }
    });
  });
}
