import { api } from "../api.js";
import { bar, donut, share } from "../charts.js";
import { h } from "../dom.js";
import { banner } from "../forms.js";
import { getLang, has, t } from "../i18n.js";
import * as fmt from "../format.js";
import { page, sessionOver } from "./common.js";

const SERVICES = ["voice", "sms", "data"];

// Below this the wallet is shown as low. GET /me/balance carries the catalogue's line (lowWallet,
// the one the notifier's low-wallet notice uses), so the page follows a catalogue change; this is
// the charging policy's default (10 TL), only for an answer without the field (an older MW).
export const LOW_WALLET_KURUS = 1000;

function allowanceCard(a) {
  const label = t(`dash.${a.service}`);
  const remaining = fmt.amount(a.service, a.remaining);
  const total = fmt.amount(a.service, a.total);
  const pct = Math.round(share(a.remaining, a.total) * 100);
  return h("article", { class: `card allowance ${a.service}`, "data-testid": `allowance-${a.service}`, "data-remaining": a.remaining, "data-total": a.total },
    h("h2", {}, label),
    h("div", { class: "allowance-body" },
      donut({ remaining: a.remaining, total: a.total, kind: a.service, centre: getLang() === "tr" ? `%${pct}` : `${pct}%`,
        label: t("dash.chartLabel", { service: label, remaining, total }) }),
      h("div", { class: "figures" },
        h("p", { class: "remaining", "data-testid": `remaining-${a.service}` }, remaining),
        h("p", { class: "total" }, t("dash.remainingOf", { total })),
        h("p", { class: "validity", "data-testid": `valid-${a.service}` },
          a.validUntil ? t("dash.validUntil", { date: fmt.date(a.validUntil) }) : (a.total ? t("dash.noValidity") : t("dash.none"))))));
}

function walletCard(wallet, lowKurus) {
  // The bar shows the wallet against 200 TL (or the wallet itself when above): a sense of size.
  const scale = Math.max(20000, wallet.kurus);
  const low = wallet.kurus < lowKurus; // a line of 0 is "never told": no wallet is below it
  return h("article", { class: `card wallet${low ? " low" : ""}`, "data-testid": "wallet", "data-kurus": wallet.kurus,
    "data-low": String(low), "data-low-line": lowKurus },
    h("h2", {}, t("dash.wallet")),
    h("p", { class: "wallet-figure", "data-testid": "wallet-amount" }, fmt.money(wallet.kurus)),
    bar({ fraction: wallet.kurus / scale, kind: "wallet", label: `${t("dash.wallet")}: ${fmt.money(wallet.kurus)}` }),
    low ? h("p", { class: "wallet-low", role: "status", "data-testid": "wallet-low" },
      t("dash.walletLow", { threshold: fmt.money(lowKurus) })) : null,
    h("div", { class: "actions" },
      h("a", { href: "#/packages", class: "button" }, t("dash.buy")),
      h("a", { href: "#/topup", class: "button secondary" }, t("dash.topup"))));
}

/** "Ankara ×2, Rize": names from the catalogue when known, repeats counted. */
function ownedList(codes, names) {
  const counts = new Map();
  for (const code of codes || []) counts.set(code, (counts.get(code) || 0) + 1);
  return [...counts].map(([code, n]) => `${names?.[code] || code}${n > 1 ? ` ×${n}` : ""}`).join(", ") || "—";
}

export function balanceView(me, balance, names = null) {
  const byService = Object.fromEntries((balance.allowances || []).map((a) => [a.service, a]));
  const status = has(`dash.status.${balance.status}`) ? t(`dash.status.${balance.status}`) : balance.status;
  return h("div", { class: "dashboard" },
    h("div", { class: "summary" },
      me ? h("p", { class: "hello", "data-testid": "hello" }, t("dash.hello", { name: `${me.firstName} ${me.lastName}` })) : null,
      h("p", { class: `status ${balance.status}`, "data-testid": "status" }, status),
      h("p", { class: "owned", "data-testid": "packages" }, t("dash.packages", { list: ownedList(balance.packages, names) })),
      h("p", { class: "asof" }, t("dash.asOf", { time: fmt.dateTime(balance.asOf || Date.now() / 1000) }))),
    h("div", { class: "cards" },
      walletCard(balance.wallet, balance.lowWallet?.kurus ?? LOW_WALLET_KURUS),
      SERVICES.filter((s) => byService[s]).map((s) => allowanceCard(byService[s]))));
}

export function render({ navigate }) {
  const messages = banner();
  const body = h("div", { class: "dash-body", "aria-live": "polite" }, h("p", { "data-i18n": "common.loading" }, t("common.loading")));
  const refresh = h("button", { type: "button", class: "secondary small", "data-i18n": "dash.refresh" }, t("dash.refresh"));
  let state = null;

  const draw = () => {
    if (state) body.replaceChildren(balanceView(state.me, state.balance, state.names));
  };
  const load = async () => {
    messages.clear();
    try {
      const [me, balance, catalogue] = await Promise.all([
        api.me(),
        api.balance(),
        api.packages().catch(() => null), // names only: the dashboard works without them
      ]);
      const names = catalogue ? Object.fromEntries(catalogue.items.map((p) => [p.code, p.name])) : null;
      state = { me, balance, names };
      draw();
      body.dataset.loaded = "true";
    } catch (err) {
      if (sessionOver(err, navigate)) return;
      messages.show("error", err.cause === "OFFLINE" ? "common.offline" : "common.unexpected");
    }
  };
  refresh.addEventListener("click", load);
  load();
  const el = page("dash.title", h("div", { class: "toolbar" }, refresh), messages, body);
  return { el, onLang: draw };
}
