import { api } from "../api.js";
import { h } from "../dom.js";
import { banner } from "../forms.js";
import { t } from "../i18n.js";
import * as fmt from "../format.js";
import { page, sessionOver } from "./common.js";

const COLUMNS = ["usage.when", "usage.service", "usage.destination", "usage.amount", "usage.charged", "usage.source"];

function table(items) {
  if (!items.length) return h("p", { class: "empty", "data-testid": "usage-empty" }, t("usage.empty"));
  const rows = [...items].sort((a, b) => b.occurredAt - a.occurredAt);
  // the column only shows when the records carry a destination
  const withDestination = rows.some((item) => item.destination);
  const columns = COLUMNS.filter((key) => withDestination || key !== "usage.destination");
  return h("div", { class: "table-wrap", tabindex: "0", role: "region", "aria-label": t("usage.title") },
    h("table", { class: "usage", "data-testid": "usage-table" },
      h("thead", {}, h("tr", {}, columns.map((key) => h("th", { scope: "col" }, t(key))))),
      h("tbody", {}, rows.map((item) =>
        h("tr", { "data-event": item.eventId, "data-occurred": item.occurredAt },
          h("td", { "data-label": t("usage.when") }, fmt.dateTime(item.occurredAt, true)),
          h("td", { "data-label": t("usage.service") }, t(`service.${item.service}`)),
          withDestination ? h("td", { "data-label": t("usage.destination") }, item.destination || "—") : null,
          h("td", { "data-label": t("usage.amount") }, fmt.usageAmount(item.service, item.units)),
          h("td", { "data-label": t("usage.charged") }, fmt.money(item.chargedKurus)),
          h("td", { "data-label": t("usage.source") }, t(item.fromPackage ? "usage.fromPackage" : "usage.fromWallet")))))));
}

export function render({ navigate }) {
  const messages = banner();
  const body = h("div", { "aria-live": "polite" }, h("p", { "data-i18n": "common.loading" }, t("common.loading")));
  let items = null;
  const draw = () => {
    if (items) body.replaceChildren(table(items));
  };
  api.usage(50).then((data) => {
    items = data.items || [];
    draw();
    body.dataset.loaded = "true";
  }).catch((err) => {
    if (sessionOver(err, navigate)) return;
    messages.show("error", err.cause === "OFFLINE" ? "common.offline" : "common.unexpected");
  });
  const el = page("usage.title", h("p", { class: "note", "data-i18n": "usage.note" }, t("usage.note")), messages, body);
  return { el, onLang: draw };
}
