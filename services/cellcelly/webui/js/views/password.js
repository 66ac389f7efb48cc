import { api } from "../api.js";
import { h } from "../dom.js";
import { banner, busy, check, field, passwordChecklist, setErrors, showProblem } from "../forms.js";
import { t } from "../i18n.js";
import * as v from "../validate.js";
import { page, sessionOver } from "./common.js";

export function render({ navigate }) {
  const messages = banner();
  const current = field({ name: "currentPassword", label: "field.currentPassword", type: "password", autocomplete: "current-password" });
  const next = field({ name: "newPassword", label: "field.newPassword", type: "password", autocomplete: "new-password" });
  const confirm = field({ name: "newPasswordConfirm", label: "field.newPasswordConfirm", type: "password", autocomplete: "new-password" });
  next.insertBefore(passwordChecklist(next.input), next.querySelector(".error"));
  const form = h("form", { novalidate: true, class: "card form" },
    messages, current, next, confirm,
    h("button", { type: "submit", class: "primary", "data-i18n": "password.submit" }, t("password.submit")));
  form.addEventListener("submit", async (event) => {
    event.preventDefault();
    messages.clear();
    const ok = check([
      [current, v.required],
      [next, (value) => {
        const codes = v.password(value);
        return codes.length || value !== current.input.value ? codes : ["same_password"];
      }],
      [confirm, (value) => v.same(value, next.input.value)],
    ]);
    if (!ok) {
      messages.show("error", "common.formErrors");
      return;
    }
    await busy(form, async () => {
      try {
        await api.changePassword(current.input.value, next.input.value);
        for (const w of [current, next, confirm]) w.input.value = "";
        next.input.dispatchEvent(new Event("input"));
        messages.show("success", "password.done");
      } catch (err) {
        if (err.status === 401 && err.cause === "INVALID_CREDENTIALS") {
          setErrors(current, []);
          messages.show("error", "password.wrongCurrent");
          current.input.focus();
          return;
        }
        if (sessionOver(err, navigate)) return;
        showProblem(err, { currentPassword: current, newPassword: next }, messages);
      }
    });
  });
  return { el: page("password.title", form) };
}
