import { api } from "../api.js";
import { h } from "../dom.js";
import { banner } from "../forms.js";
import { t } from "../i18n.js";
import * as fmt from "../format.js";
import { page, sessionOver } from "./common.js";

export const PAGE_SIZE = 20;

const COLUMNS = ["usage.when", "usage.service", "usage.destination", "usage.amount", "usage.charged"];

// E.164 country codes are prefix-free: with a first digit of 1 or 7 the code is that digit; else
// these two-digit codes are whole and every other code has three digits (ITU-T E.164 annex).
const TWO_DIGIT_CODES = new Set([
  "20", "27", "30", "31", "32", "33", "34", "36", "39", "40", "41", "43", "44", "45", "46", "47", "48", "49",
  "51", "52", "53", "54", "55", "56", "57", "58", "60", "61", "62", "63", "64", "65", "66", "81", "82", "84",
  "86", "90", "91", "92", "93", "94", "95", "98",
]);

function countryCode(digits) {
  if (digits[0] === "1" || digits[0] === "7") return digits[0];
  return TWO_DIGIT_CODES.has(digits.slice(0, 2)) ? digits.slice(0, 2) : digits.slice(0, 3);
}

/** A called number as people read it: "905551112233" -> "+90 555 111 22 33", "4915112345678" ->
 *  "+49 151 123 456 78"; anything that is not an international number is shown as recorded,
 *  no number (data) as a dash. */
export function destination(text) {
  if (!text) return "—";
  const turkish = /^90(\d{3})(\d{3})(\d{2})(\d{2})$/.exec(text);
  if (turkish) return `+90 ${turkish.slice(1).join(" ")}`;
  if (!/^\d{8,15}$/.test(text)) return text;
  const code = countryCode(text);
  // threes; a lone last digit ("123 4" reads badly) joins the group before it
  const groups = text.slice(code.length).match(/\d{1,3}/g) || [];
  if (groups.length > 1 && groups.at(-1).length === 1) {
    const lone = groups.pop();
    groups[groups.length - 1] += lone;
  }
  return `+${code} ${groups.join(" ")}`;
}

/** What a row cost and from where: the package's share in the service's units, the wallet's in TL. */
export function price(item) {
  const packageUnits = item.packageUnits ?? (item.fromPackage ? item.units : 0); // older MW: no split
  const money = fmt.money(item.chargedKurus);
  if (packageUnits > 0 && item.chargedKurus > 0) {
    return t("usage.mixed", { units: fmt.usageAmount(item.service, packageUnits), money });
  }
  if (packageUnits > 0) return t("usage.fromPackage");
  return item.chargedKurus > 0 ? t("usage.fromWallet", { money }) : t("usage.free");
}

function table(items) {
  if (!items.length) return h("p", { class: "empty", "data-testid": "usage-empty" }, t("usage.empty"));
  // the API's order, newest first (ties broken by the server's keyset), kept across pages
  return h("div", { class: "table-wrap", tabindex: "0", role: "region", "aria-label": t("usage.title") },
    h("table", { class: "usage", "data-testid": "usage-table" },
      h("thead", {}, h("tr", {}, COLUMNS.map((key) => h("th", { scope: "col" }, t(key))))),
      h("tbody", {}, items.map((item) =>
        h("tr", { "data-event": item.eventId, "data-occurred": item.occurredAt },
          h("td", { "data-label": t("usage.when") }, fmt.dateTime(item.occurredAt, true)),
          h("td", { "data-label": t("usage.service") }, t(`service.${item.service}`)),
          h("td", { "data-label": t("usage.destination"), class: "destination", "data-testid": "usage-destination" },
            destination(item.destination)),
          h("td", { "data-label": t("usage.amount") }, fmt.usageAmount(item.service, item.units)),
          h("td", { "data-label": t("usage.charged"), "data-testid": "usage-price" }, price(item)))))));
}

export function render({ navigate }) {
  const messages = banner();
  const list = h("div", {}, h("p", { "data-i18n": "common.loading" }, t("common.loading")));
  // one button for the page's life, so keyboard focus stays on it from page to page
  const more = h("button", { type: "button", class: "secondary more", "data-testid": "usage-more", "data-i18n": "usage.more", hidden: true },
    t("usage.more"));
  const body = h("div", { class: "usage-body", "aria-live": "polite" }, list, more);
  let items = null;
  let next = null;
  let busy = false; // not `disabled`: a disabled button drops keyboard focus
  const draw = () => {
    if (items) list.replaceChildren(table(items));
  };
  const load = async () => {
    if (busy) return;
    busy = true;
    more.setAttribute("aria-busy", "true");
    try {
      const data = await api.usage(PAGE_SIZE, next);
      const seen = new Set((items || []).map((item) => item.eventId));
      items = [...(items || []), ...(data.items || []).filter((item) => !seen.has(item.eventId))];
      next = data.next || null;
      draw();
      if (!next && more === document.activeElement) list.querySelector(".table-wrap")?.focus();
      more.hidden = !next;
      body.dataset.loaded = "true";
      body.dataset.rows = String(items.length);
    } catch (err) {
      if (sessionOver(err, navigate)) return;
      messages.show("error", err.cause === "OFFLINE" ? "common.offline" : "common.unexpected");
    } finally {
      busy = false;
      more.removeAttribute("aria-busy");
    }
  };
  more.addEventListener("click", () => {
    messages.clear();
    load();
  });
  load();
  const el = page("usage.title", h("p", { class: "note", "data-i18n": "usage.note" }, t("usage.note")), messages, body);
  return { el, onLang: draw };
}
