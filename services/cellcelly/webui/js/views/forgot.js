import { api } from "../api.js";
import { h } from "../dom.js";
import { banner, busy, check, field, passwordChecklist, showProblem } from "../forms.js";
import { t } from "../i18n.js";
import * as v from "../validate.js";

function channelChoice() {
  const option = (value, key, checked) => h("div", { class: "check-row" },
    h("input", { type: "radio", name: "channel", id: `channel-${value}`, value, checked }),
    h("label", { for: `channel-${value}`, "data-i18n": key }, t(key)));
  return h("fieldset", { class: "field channel" },
    h("legend", { "data-i18n": "field.channel" }, t("field.channel")),
    h("div", { class: "inline" }, option("sms", "channel.sms", true), option("email", "channel.email", false)));
}

export function render({ navigate }) {
  const messages = banner();
  const msisdn = field({ name: "msisdn", label: "field.msisdn", hint: "field.msisdn.hint", inputmode: "numeric", autocomplete: "tel-national" });
  const prefill = sessionStorage.getItem("cc.lastMsisdn");
  if (prefill) msisdn.input.value = prefill;
  const channels = channelChoice();

  const ask = h("form", { novalidate: true, class: "step", "data-step": "ask" },
    h("p", { "data-i18n": "forgot.intro" }, t("forgot.intro")),
    msisdn, channels,
    h("button", { type: "submit", class: "primary", "data-i18n": "forgot.send" }, t("forgot.send")));

  const code = field({ name: "code", label: "field.code", hint: "field.code.hint", inputmode: "numeric", autocomplete: "one-time-code" });
  const securityKey = field({ name: "securityKey", label: "field.securityKey", type: "password", autocomplete: "off" });
  const newPassword = field({ name: "newPassword", label: "field.newPassword", type: "password", autocomplete: "new-password" });
  const confirm = field({ name: "newPasswordConfirm", label: "field.newPasswordConfirm", type: "password", autocomplete: "new-password" });
  newPassword.insertBefore(passwordChecklist(newPassword.input), newPassword.querySelector(".error"));
  const resend = h("button", { type: "button", class: "link-button", "data-i18n": "forgot.resend" }, t("forgot.resend"));

  const reset = h("form", { novalidate: true, class: "step", "data-step": "reset", hidden: true },
    h("h2", { "data-i18n": "forgot.resetTitle" }, t("forgot.resetTitle")),
    code, securityKey, newPassword, confirm,
    h("button", { type: "submit", class: "primary", "data-i18n": "forgot.reset" }, t("forgot.reset")),
    resend);

  const sendCode = async () => {
    messages.clear();
    if (!check([[msisdn, v.msisdn]])) return;
    const channel = channels.querySelector("input:checked").value;
    await busy(ask, async () => {
      try {
        await api.forgot(msisdn.input.value, channel);
        sessionStorage.setItem("cc.lastMsisdn", msisdn.input.value);
        messages.show("success", "forgot.sent");
        ask.hidden = true;
        reset.hidden = false;
        code.input.focus();
      } catch (err) {
        showProblem(err, { msisdn }, messages);
      }
    });
  };
  ask.addEventListener("submit", (event) => {
    event.preventDefault();
    sendCode();
  });
  resend.addEventListener("click", () => {
    reset.hidden = true;
    ask.hidden = false;
    sendCode();
  });
  reset.addEventListener("submit", async (event) => {
    event.preventDefault();
    messages.clear();
    const ok = check([
      [code, v.code],
      [securityKey, v.securityKey],
      [newPassword, v.password],
      [confirm, (value) => v.same(value, newPassword.input.value)],
    ]);
    if (!ok) {
      messages.show("error", "common.formErrors");
      return;
    }
    await busy(reset, async () => {
      try {
        await api.reset({
          msisdn: msisdn.input.value,
          code: code.input.value,
          securityKey: securityKey.input.value,
          newPassword: newPassword.input.value,
        });
        navigate("login", "login.resetDone");
      } catch (err) {
        showProblem(err, { code, securityKey, newPassword }, messages);
      }
    });
  });

  const el = h("section", { class: "auth" },
    h("div", { class: "card form" },
      h("h1", { "data-i18n": "forgot.title" }, t("forgot.title")),
      messages, ask, reset,
      h("p", { class: "links" }, h("a", { href: "#/login", "data-i18n": "common.back" }, t("common.back")))));
  return { el };
}
