import { api } from "../api.js";
import { h } from "../dom.js";
import { banner, busy, check, field, passwordChecklist, setErrors, showProblem } from "../forms.js";
import { t } from "../i18n.js";
import * as fmt from "../format.js";
import * as v from "../validate.js";

function packageCard(item, checked) {
  const id = `pkg-${item.code}`;
  const a = item.allowances || {};
  return h("div", { class: "pkg-option" },
    h("input", { type: "radio", name: "package", id, value: item.code, checked, class: "visually-hidden-radio" }),
    h("label", { for: id, class: "pkg-card", "data-package": item.code },
      h("span", { class: "pkg-name" }, item.name),
      h("span", { class: "pkg-included", "data-i18n": "register.included" }, t("register.included")),
      h("span", { class: "pkg-price included", "data-money": item.price.kurus }, fmt.money(item.price.kurus)),
      h("span", { class: "pkg-allowances" },
        h("span", { "data-amount": `voice:${a.voice || 0}` }, fmt.minutes(a.voice || 0)), " · ",
        h("span", { "data-amount": `data:${a.data || 0}` }, fmt.data(a.data || 0)), " · ",
        h("span", { "data-amount": `sms:${a.sms || 0}` }, fmt.sms(a.sms || 0))),
      h("span", { class: "pkg-validity", "data-i18n": "packages.validity", "data-i18n-params": JSON.stringify({ days: item.validityDays }) },
        t("packages.validity", { days: item.validityDays }))));
}

/** Re-format figures that depend on the language (money, units) inside a subtree. */
export function reformat(root) {
  for (const el of root.querySelectorAll("[data-money]")) el.textContent = fmt.money(Number(el.dataset.money));
  for (const el of root.querySelectorAll("[data-amount]")) {
    const [service, units] = el.dataset.amount.split(":");
    el.textContent = fmt.amount(service, Number(units));
  }
}

export function render({ navigate }) {
  const firstName = field({ name: "firstName", label: "field.firstName", autocomplete: "given-name" });
  const lastName = field({ name: "lastName", label: "field.lastName", autocomplete: "family-name" });
  const msisdn = field({ name: "msisdn", label: "field.msisdn", hint: "field.msisdn.hint", inputmode: "numeric", autocomplete: "tel-national" });
  const email = field({ name: "email", label: "field.email", type: "email", autocomplete: "email" });
  const password = field({ name: "password", label: "field.password", type: "password", autocomplete: "new-password" });
  const confirm = field({ name: "passwordConfirm", label: "field.passwordConfirm", type: "password", autocomplete: "new-password" });
  const securityKey = field({ name: "securityKey", label: "field.securityKey", hint: "field.securityKey.hint", type: "password", autocomplete: "off" });
  const rules = passwordChecklist(password.input);
  password.insertBefore(rules, password.querySelector(".error"));
  const messages = banner();

  const packagesBox = h("div", { class: "pkg-grid", role: "radiogroup", "aria-labelledby": "pkg-legend" },
    h("p", { "data-i18n": "common.loading" }, t("common.loading")));
  const packageError = h("div", { class: "error", "aria-live": "polite", "data-error-for": "package" });
  // The first package comes with the sign-up (the wallet keeps its full opening amount): the
  // prices are shown as what it is worth, and this line says it is not taken from the wallet.
  const packageField = h("fieldset", { class: "field packages", "data-field": "package", "aria-describedby": "pkg-included" },
    h("legend", { id: "pkg-legend", "data-i18n": "field.package" }, t("field.package")),
    h("p", { class: "hint", id: "pkg-included", "data-testid": "package-included", "data-i18n": "register.includedNote" }, t("register.includedNote")),
    packagesBox, packageError);
  // setErrors expects wrapper.input; the radio group reports through its first radio
  packageField.input = { value: "", setAttribute() {}, focus: () => packagesBox.querySelector("input")?.focus() };
  Object.defineProperty(packageField.input, "value", { get: () => packagesBox.querySelector("input:checked")?.value || "" });

  api.packages().then((data) => {
    const items = data.items || [];
    packagesBox.replaceChildren(...items.map((item, i) => packageCard(item, i === 0)));
  }).catch(() => {
    packagesBox.replaceChildren(h("p", { class: "error-text", "data-i18n": "register.packagesError" }, t("register.packagesError")));
  });

  const form = h("form", { novalidate: true, class: "card form wide", "aria-labelledby": "register-title" },
    h("h1", { id: "register-title", "data-i18n": "register.title" }, t("register.title")),
    messages,
    h("div", { class: "row" }, firstName, lastName),
    h("div", { class: "row" }, msisdn, email),
    h("div", { class: "row" }, password, confirm),
    securityKey,
    packageField,
    h("button", { type: "submit", class: "primary", "data-i18n": "register.submit" }, t("register.submit")),
    h("p", { class: "links" },
      h("span", { "data-i18n": "register.haveAccount" }, t("register.haveAccount")), " ",
      h("a", { href: "#/login", "data-i18n": "register.login" }, t("register.login"))),
  );

  const fields = { firstName, lastName, msisdn, email, password, passwordConfirm: confirm, securityKey, package: packageField };
  form.addEventListener("submit", async (event) => {
    event.preventDefault();
    messages.clear();
    const ok = check([
      [firstName, v.name],
      [lastName, v.name],
      [msisdn, v.msisdn],
      [email, v.email],
      [password, v.password],
      [confirm, (value) => v.same(value, password.input.value)],
      [securityKey, v.securityKey],
      [packageField, v.required],
    ]);
    if (!ok) {
      messages.show("error", "common.formErrors");
      return;
    }
    await busy(form, async () => {
      try {
        await api.register({
          firstName: firstName.input.value.trim(),
          lastName: lastName.input.value.trim(),
          msisdn: msisdn.input.value,
          email: email.input.value.trim(),
          password: password.input.value,
          securityKey: securityKey.input.value,
          package: packageField.input.value,
        });
        sessionStorage.setItem("cc.lastMsisdn", msisdn.input.value);
        navigate("login", "login.registered");
      } catch (err) {
        if (err.cause === "MSISDN_TAKEN") setErrors(msisdn, []);
        showProblem(err, fields, messages);
      }
    });
  });
  const el = h("section", { class: "auth" }, form);
  return { el, onLang: () => reformat(el) };
}
