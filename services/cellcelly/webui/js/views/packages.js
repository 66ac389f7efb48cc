import { api } from "../api.js";
import { h } from "../dom.js";
import { banner } from "../forms.js";
import { t } from "../i18n.js";
import * as fmt from "../format.js";
import { page, sessionOver } from "./common.js";
import { balanceView } from "./dashboard.js";

function requestId() {
  return crypto.randomUUID ? crypto.randomUUID() : `${Date.now()}-${Math.random().toString(16).slice(2)}`;
}

export function render({ navigate }) {
  const messages = banner();
  const intro = h("p", { class: "intro", "data-testid": "packages-wallet" });
  const grid = h("div", { class: "pkg-grid shop", "aria-live": "polite" }, h("p", { "data-i18n": "common.loading" }, t("common.loading")));
  const after = h("div", { class: "after" });
  let catalogue = null;
  let balance = null;
  let lastMessage = null;
  let renewing = null; // Set of codes renewed from the wallet; null until GET /me/renewals answered
  const pending = new Map(); // code -> the choice whose PUT is on its way
  const notes = new Map(); // code -> [kind, key, params]: the last outcome shown under its switch
  const names = () => (catalogue ? Object.fromEntries(catalogue.map((p) => [p.code, p.name])) : null);

  const drawIntro = () => {
    if (balance) intro.textContent = t("packages.intro", { wallet: fmt.money(balance.wallet.kurus) });
  };
  const say = (kind, key, params) => {
    lastMessage = [kind, key, params];
    messages.show(kind, key, params);
    messages.scrollIntoView({ block: "nearest", behavior: "smooth" }); // on a phone the cards push it off screen
  };
  const sayAgain = () => {
    if (lastMessage) messages.show(...lastMessage);
  };

  const buy = async (item, button) => {
    messages.clear();
    lastMessage = null;
    button.disabled = true;
    try {
      balance = await api.buy(item.code, requestId());
      drawIntro();
      after.replaceChildren(balanceView(null, balance, names()));
      syncRenewals(); // a package just bought can now be set to renew
      say("success", "packages.bought", { name: item.name, wallet: fmt.money(balance.wallet.kurus) });
    } catch (err) {
      if (sessionOver(err, navigate)) return;
      if (err.cause === "INSUFFICIENT_FUNDS") {
        const wallet = balance ? fmt.money(balance.wallet.kurus) : "—";
        say("error", "packages.insufficient", { name: item.name, price: fmt.money(item.price.kurus), wallet });
      } else if (err.cause === "UNKNOWN_PACKAGE" || err.cause === "SUSPENDED" || err.cause === "OFFLINE") {
        say("error", `cause.${err.cause}`);
      } else {
        say("error", "common.unexpected");
      }
    } finally {
      button.disabled = false;
    }
  };

  // A switch shows on the cards of packages held (or already set to renew, so it can be turned off).
  const offersRenewal = (code) =>
    renewing !== null && ((balance?.packages || []).includes(code) || renewing.has(code));

  const renewNote = (code) => {
    const note = notes.get(code);
    if (!note) return null;
    const [kind, key, params] = note;
    return h("p", { class: `renew-note ${kind}`, "data-testid": `renew-note-${code}` }, t(key, params));
  };

  const setRenewal = async (item, input) => {
    const want = input.checked;
    if (pending.has(item.code)) { // one PUT at a time per package: keep showing the one under way
      input.checked = pending.get(item.code);
      return;
    }
    pending.set(item.code, want);
    notes.delete(item.code);
    syncRenewals();
    try {
      await api.setRenewal(item.code, want);
      if (want) renewing.add(item.code);
      else renewing.delete(item.code);
      notes.set(item.code, ["success", want ? "renew.on" : "renew.off", { name: item.name }]);
    } catch (err) {
      if (sessionOver(err, navigate)) return;
      const key = err.cause === "UNKNOWN_PACKAGE" ? "cause.UNKNOWN_PACKAGE" : err.cause === "OFFLINE" ? "common.offline" : "renew.failed";
      notes.set(item.code, ["error", key, {}]);
    } finally {
      pending.delete(item.code);
      syncRenewals(); // the switch shows what the server holds: unchanged after a failure
    }
  };

  const renewControl = (item) => {
    const id = `renew-${item.code}`;
    const input = h("input", {
      type: "checkbox", role: "switch", id, "data-renew": item.code,
      // "Otomatik yenile Ankara": the package's name too, as every card has the same label
      "aria-labelledby": `${id}-label pkg-name-${item.code}`,
      "aria-describedby": `${id}-hint ${id}-note`,
    });
    input.addEventListener("change", () => setRenewal(item, input));
    return [
      h("div", { class: "check-row switch" },
        input,
        h("label", { for: id, id: `${id}-label` }, t("renew.label"))),
      h("p", { class: "hint", id: `${id}-hint` }, t("renew.hint")),
      h("div", { id: `${id}-note`, role: "status" }),
    ];
  };

  /** Each card's renewal part made, or brought up to date in place (the focus stays on a switch). */
  const syncRenewals = () => {
    grid.dataset.renewals = renewing === null ? "unknown" : "loaded";
    for (const item of catalogue || []) {
      const slot = grid.querySelector(`[data-renew-slot="${item.code}"]`);
      if (!slot) continue;
      grid.querySelector(`[data-held="${item.code}"]`).hidden = !(balance?.packages || []).includes(item.code);
      if (!offersRenewal(item.code)) {
        slot.replaceChildren();
        continue;
      }
      if (!slot.childElementCount) slot.replaceChildren(...renewControl(item));
      const input = slot.querySelector("input");
      // Not disabled while saving: a disabled switch would drop the keyboard focus.
      input.checked = pending.has(item.code) ? pending.get(item.code) : renewing.has(item.code);
      input.setAttribute("aria-busy", String(pending.has(item.code)));
      slot.querySelector(`#renew-${item.code}-note`).replaceChildren(...[renewNote(item.code)].filter(Boolean));
    }
  };

  const card = (item) => {
    const a = item.allowances || {};
    const button = h("button", { type: "button", class: "primary", "data-buy": item.code, "aria-label": t("packages.buy", { name: item.name }) }, t("packages.buyShort"));
    button.addEventListener("click", () => buy(item, button));
    return h("article", { class: "pkg-card static", "data-package": item.code },
      h("h2", { class: "pkg-name", id: `pkg-name-${item.code}` }, item.name),
      h("p", { class: "pkg-held", "data-held": item.code, hidden: true }, t("renew.held")),
      h("p", { class: "pkg-price" }, fmt.money(item.price.kurus)),
      h("ul", { class: "pkg-list" },
        h("li", {}, `${t("service.voice")}: ${fmt.minutes(a.voice || 0)}`),
        h("li", {}, `${t("service.data")}: ${fmt.data(a.data || 0)}`),
        h("li", {}, `${t("service.sms")}: ${fmt.sms(a.sms || 0)}`)),
      h("p", { class: "pkg-validity" }, t("packages.validity", { days: item.validityDays })),
      h("div", { class: "renew", "data-renew-slot": item.code }),
      button);
  };
  const drawGrid = () => {
    if (!catalogue) return;
    grid.replaceChildren(...catalogue.map(card));
    syncRenewals();
  };

  // The shop works without the renewal list: then no switch, and a line saying why.
  const loadRenewals = api.renewals().then(
    (data) => new Set(data.items || []),
    (err) => (err && err.status === 401 ? Promise.reject(err) : null),
  );
  Promise.all([api.packages(), api.balance(), loadRenewals]).then(([data, bal, renewals]) => {
    catalogue = data.items || [];
    balance = bal;
    renewing = renewals;
    drawIntro();
    drawGrid();
    grid.dataset.loaded = "true";
    if (renewals === null) say("error", "renew.loadFailed");
  }).catch((err) => {
    if (sessionOver(err, navigate)) return;
    say("error", err.cause === "OFFLINE" ? "common.offline" : "common.unexpected");
  });

  const el = page("packages.title", intro, messages, after, grid);
  return {
    el,
    onLang: () => {
      drawIntro();
      drawGrid();
      if (balance && after.childElementCount) after.replaceChildren(balanceView(null, balance, names()));
      sayAgain();
    },
  };
}
