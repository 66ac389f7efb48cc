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

  const card = (item) => {
    const a = item.allowances || {};
    const button = h("button", { type: "button", class: "primary", "data-buy": item.code, "aria-label": t("packages.buy", { name: item.name }) }, t("packages.buyShort"));
    button.addEventListener("click", () => buy(item, button));
    return h("article", { class: "pkg-card static", "data-package": item.code },
      h("h2", { class: "pkg-name" }, item.name),
      h("p", { class: "pkg-price" }, fmt.money(item.price.kurus)),
      h("ul", { class: "pkg-list" },
        h("li", {}, `${t("service.voice")}: ${fmt.minutes(a.voice || 0)}`),
        h("li", {}, `${t("service.data")}: ${fmt.data(a.data || 0)}`),
        h("li", {}, `${t("service.sms")}: ${fmt.sms(a.sms || 0)}`)),
      h("p", { class: "pkg-validity" }, t("packages.validity", { days: item.validityDays })),
      button);
  };
  const drawGrid = () => {
    if (catalogue) grid.replaceChildren(...catalogue.map(card));
  };

  Promise.all([api.packages(), api.balance()]).then(([data, bal]) => {
    catalogue = data.items || [];
    balance = bal;
    drawIntro();
    drawGrid();
    grid.dataset.loaded = "true";
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
