import { api } from "../api.js";
import { h } from "../dom.js";
import { banner, busy, check, field, showProblem } from "../forms.js";
import { t } from "../i18n.js";
import * as fmt from "../format.js";
import * as v from "../validate.js";
import { page, sessionOver } from "./common.js";

export function render({ navigate }) {
  const messages = banner();
  const voucher = field({ name: "voucher", label: "field.voucher", hint: "field.voucher.hint", inputmode: "numeric", autocomplete: "off" });
  const form = h("form", { novalidate: true, class: "card form" },
    h("p", { "data-i18n": "topup.intro" }, t("topup.intro")),
    messages,
    voucher,
    h("button", { type: "submit", class: "primary", "data-i18n": "topup.submit" }, t("topup.submit")));
  let done = null;
  form.addEventListener("submit", async (event) => {
    event.preventDefault();
    messages.clear();
    done = null;
    if (!check([[voucher, v.voucher]])) return;
    await busy(form, async () => {
      try {
        const balance = await api.topup(voucher.input.value.trim());
        done = balance.wallet.kurus;
        messages.show("success", "topup.done", { wallet: fmt.money(done) });
        voucher.input.value = "";
      } catch (err) {
        if (sessionOver(err, navigate)) return;
        showProblem(err, { voucher }, messages);
      }
    });
  });
  return {
    el: page("topup.title", form),
    onLang: () => {
      if (done !== null) messages.show("success", "topup.done", { wallet: fmt.money(done) });
    },
  };
}
