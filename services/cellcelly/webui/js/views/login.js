import { api } from "../api.js";
import { h } from "../dom.js";
import { banner, busy, check, field, setErrors, showProblem } from "../forms.js";
import { t } from "../i18n.js";
import * as v from "../validate.js";

export function render({ navigate, flash }) {
  const msisdn = field({ name: "msisdn", label: "field.msisdn", hint: "field.msisdn.hint", inputmode: "numeric", autocomplete: "tel-national" });
  const password = field({ name: "password", label: "field.password", type: "password", autocomplete: "current-password" });
  const remember = h("input", { type: "checkbox", id: "remember", name: "rememberMe" });
  const messages = banner();
  // flash: a message key from the page before (success), or {key, kind}
  if (flash) messages.show(flash.kind || "success", flash.key || flash);
  const prefill = sessionStorage.getItem("cc.lastMsisdn");
  if (prefill) msisdn.input.value = prefill;

  const form = h("form", { novalidate: true, class: "card form", "aria-labelledby": "login-title" },
    h("h1", { id: "login-title", "data-i18n": "login.title" }, t("login.title")),
    messages,
    msisdn,
    password,
    h("div", { class: "check-row" }, remember, h("label", { for: "remember", "data-i18n": "login.remember" }, t("login.remember"))),
    h("button", { type: "submit", class: "primary" , "data-i18n": "login.submit" }, t("login.submit")),
    h("p", { class: "links" },
      h("a", { href: "#/forgot", "data-i18n": "login.forgot" }, t("login.forgot"))),
    h("p", { class: "links" },
      h("span", { "data-i18n": "login.noAccount" }, t("login.noAccount")), " ",
      h("a", { href: "#/register", "data-i18n": "login.register" }, t("login.register"))),
  );

  form.addEventListener("submit", async (event) => {
    event.preventDefault();
    messages.clear();
    if (!check([[msisdn, v.msisdn], [password, v.required]])) return;
    await busy(form, async () => {
      try {
        await api.login(msisdn.input.value, password.input.value, remember.checked);
        sessionStorage.setItem("cc.lastMsisdn", msisdn.input.value);
        navigate("dashboard");
      } catch (err) {
        setErrors(password, []);
        showProblem(err, { msisdn, password }, messages);
        password.input.value = "";
      }
    });
  });
  return { el: h("section", { class: "auth" }, form) };
}
