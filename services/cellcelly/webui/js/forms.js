// Form fields with a label, a hint and an error slot (aria-live), errors kept as codes so a
// language switch re-translates them, and server ProblemDetails mapped onto the fields.
import { h, nextId, svg } from "./dom.js";
import { t, has, translate } from "./i18n.js";
import { passwordRules, PASSWORD_RULES } from "./validate.js";

/** One labelled input. Returns the wrapper; wrapper.input is the <input>. */
export function field({ name, label, type = "text", hint, autocomplete, inputmode, value = "" }) {
  const id = nextId(name);
  const errorId = `${id}-error`;
  const hintId = hint ? `${id}-hint` : null;
  const input = h("input", {
    id,
    name,
    type,
    autocomplete,
    inputmode,
    spellcheck: "false",
    "aria-describedby": [hintId, errorId].filter(Boolean).join(" "),
    "aria-invalid": "false",
  });
  input.value = value;
  const wrapper = h(
    "div",
    { class: "field", "data-field": name },
    h("label", { for: id, "data-i18n": label }, t(label)),
    type === "password" ? passwordBox(input) : input,
    hint ? h("p", { class: "hint", id: hintId, "data-i18n": hint }, t(hint)) : null,
    h("div", { class: "error", id: errorId, "aria-live": "polite", "data-error-for": name }),
  );
  wrapper.input = input;
  return wrapper;
}

function eyeIcon() {
  return svg("svg", { viewBox: "0 0 24 24", width: 22, height: 22, "aria-hidden": "true", focusable: "false" },
    svg("path", { d: "M1.5 12S5.5 4.5 12 4.5 22.5 12 22.5 12 18.5 19.5 12 19.5 1.5 12 1.5 12Z", fill: "none", stroke: "currentColor", "stroke-width": 1.8 }),
    svg("circle", { cx: 12, cy: 12, r: 3.5, fill: "none", stroke: "currentColor", "stroke-width": 1.8 }),
    svg("path", { class: "slash", d: "M3 3l18 18", stroke: "currentColor", "stroke-width": 1.8 }));
}

function passwordBox(input) {
  const toggle = h("button", {
    type: "button",
    class: "reveal",
    "aria-pressed": "false",
    "data-i18n-aria": "common.showPassword",
    "aria-label": t("common.showPassword"),
  }, eyeIcon());
  toggle.addEventListener("click", () => {
    const shown = input.type === "text";
    input.type = shown ? "password" : "text";
    toggle.setAttribute("aria-pressed", String(!shown));
    toggle.dataset.i18nAria = shown ? "common.showPassword" : "common.hidePassword";
    toggle.setAttribute("aria-label", t(toggle.dataset.i18nAria));
  });
  return h("div", { class: "password-box" }, input, toggle);
}

/** Show codes under a field (replacing what was there); [] clears it. */
export function setErrors(wrapper, codes) {
  const slot = wrapper.querySelector(".error");
  slot.replaceChildren(
    ...codes.map((code) => {
      const key = has(`err.${code}`) ? `err.${code}` : "err.invalid";
      return h("p", { "data-i18n": key, "data-code": code }, t(key));
    }),
  );
  wrapper.input.setAttribute("aria-invalid", String(codes.length > 0));
  wrapper.classList.toggle("invalid", codes.length > 0);
}

/** Run the checks {name: [wrapper, fn]}; returns true when all pass, focusing the first bad field. */
export function check(fields) {
  let first = null;
  for (const [wrapper, fn] of fields) {
    const codes = fn(wrapper.input.value);
    setErrors(wrapper, codes);
    if (codes.length && !first) first = wrapper.input;
  }
  if (first) first.focus();
  return first === null;
}

/** The form-level message area (role=alert for errors, status for success). */
export function banner() {
  const el = h("div", { class: "banner", "aria-live": "assertive", "data-testid": "form-message" });
  el.show = (kind, key, params = {}) => {
    el.className = `banner ${kind}`;
    el.setAttribute("role", kind === "error" ? "alert" : "status");
    el.replaceChildren(
      h("p", { "data-i18n": key, "data-i18n-params": JSON.stringify(params), "data-kind": kind }, t(key, params)),
    );
  };
  el.clear = () => {
    el.className = "banner";
    el.removeAttribute("role");
    el.replaceChildren();
  };
  return el;
}

/**
 * The lockout's wait as a message key and its number: whole minutes rounded up ("15 minutes", not
 * "888 seconds"), seconds only under a minute. The number stays a plain {n} so a language switch
 * re-translates the banner; one and many are separate keys for English's plural.
 */
export function lockedMessage(retryAfterSeconds) {
  const seconds = Math.max(1, Math.ceil(Number(retryAfterSeconds) || 0));
  if (seconds < 60) return [seconds === 1 ? "cause.LOCKED.second" : "cause.LOCKED.seconds", { n: seconds }];
  const minutes = Math.ceil(seconds / 60);
  return [minutes === 1 ? "cause.LOCKED.minute" : "cause.LOCKED.minutes", { n: minutes }];
}

/** The contract's param names are camelCase field names; FastAPI's own may be "body.x". */
function paramName(param) {
  return String(param || "").replace(/^body\./, "");
}

/**
 * Put a server problem where it belongs: invalidParams next to their fields, a known cause in the
 * banner, anything else as a generic message. `fields` maps param name -> wrapper.
 */
export function showProblem(err, fields, messages) {
  const byParam = new Map();
  for (const item of err.invalidParams || []) {
    const name = paramName(item.param);
    if (!byParam.has(name)) byParam.set(name, []);
    byParam.get(name).push(item.code || "invalid");
  }
  let placed = false;
  for (const [name, codes] of byParam) {
    if (fields[name]) {
      setErrors(fields[name], codes);
      placed = true;
    }
  }
  if (placed && err.cause === "INVALID_INPUT") {
    messages.show("error", "common.formErrors");
    const first = Object.values(fields).find((w) => w.classList.contains("invalid"));
    first?.input.focus();
    return;
  }
  if (err.cause === "LOCKED") {
    messages.show("error", ...lockedMessage(err.retryAfter ?? 60));
  } else if (err.cause && has(`cause.${err.cause}`)) {
    messages.show("error", `cause.${err.cause}`);
  } else {
    messages.show("error", "common.unexpected");
  }
}

/** Live checklist of the password rules, updated as the user types. */
export function passwordChecklist(input) {
  const items = PASSWORD_RULES.map((rule) =>
    h("li", { "data-rule": rule, class: "unmet" },
      h("span", { class: "mark", "aria-hidden": "true" }, "✗"),
      h("span", { "data-i18n": `rules.${rule}` }, t(`rules.${rule}`)),
      h("span", { class: "sr-only state", "data-i18n": "rules.unmet" }, t("rules.unmet"))),
  );
  const list = h("ul", { class: "rules", "aria-label": t("rules.title"), "data-i18n-aria": "rules.title" }, items);
  const update = () => {
    for (const { rule, met } of passwordRules(input.value)) {
      const li = list.querySelector(`[data-rule="${rule}"]`);
      li.className = met ? "met" : "unmet";
      li.querySelector(".mark").textContent = met ? "✓" : "✗";
      const state = li.querySelector(".state");
      state.dataset.i18n = met ? "rules.met" : "rules.unmet";
      translate(li);
    }
  };
  input.addEventListener("input", update);
  update();
  return list;
}

/** Disable a form's submit button while a request runs. */
export async function busy(form, fn) {
  const button = form.querySelector("button[type=submit]");
  if (button) button.disabled = true;
  form.setAttribute("aria-busy", "true");
  try {
    return await fn();
  } finally {
    if (button) button.disabled = false;
    form.removeAttribute("aria-busy");
  }
}
