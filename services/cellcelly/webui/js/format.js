// Locale-aware figures. Money stays integer kuruş all the way: no floats.
import { locale, t } from "./i18n.js";

export const MB = 1048576;
export const GB = 1073741824;

function grouped(n) {
  return new Intl.NumberFormat(locale(), { maximumFractionDigits: 0 }).format(n);
}

function decimalSep() {
  return locale().startsWith("tr") ? "," : ".";
}

/** 12345 kuruş -> "123,45 TL" (tr) / "123.45 TL" (en). */
export function money(kurus) {
  const negative = kurus < 0;
  const abs = Math.abs(kurus);
  const lira = Math.floor(abs / 100);
  const rest = String(abs % 100).padStart(2, "0");
  return `${negative ? "-" : ""}${grouped(lira)}${decimalSep()}${rest} TL`;
}

/** Fixed-point with up to two decimals, trailing zeros dropped: integer maths on hundredths. */
function twoDecimals(numerator, denominator) {
  const hundredths = Math.floor((numerator * 100) / denominator);
  const whole = Math.floor(hundredths / 100);
  let frac = String(hundredths % 100).padStart(2, "0").replace(/0+$/, "");
  return frac ? `${grouped(whole)}${decimalSep()}${frac}` : grouped(whole);
}

/** Octets -> "3 GB", "512 MB", "1,5 GB" (1 MB = 1048576 octets, 1 GB = 1024 MB). */
export function data(octets) {
  if (octets >= GB) return `${twoDecimals(octets, GB)} GB`;
  if (octets >= MB || octets === 0) return `${twoDecimals(octets, MB)} MB`;
  return `${grouped(Math.ceil(octets / 1024))} KB`;
}

/** Seconds -> whole minutes left (the contract: minutes = seconds // 60). */
export function minutes(seconds) {
  return t("unit.minutes", { n: grouped(Math.floor(seconds / 60)) });
}

export function sms(count) {
  return t("unit.sms", { n: grouped(count) });
}

export function amount(service, units) {
  if (service === "voice") return minutes(units);
  if (service === "sms") return sms(units);
  return data(units);
}

/** Usage amounts: voice as m:ss so short calls still show. */
export function usageAmount(service, units) {
  if (service === "voice") {
    const m = Math.floor(units / 60);
    const s = String(units % 60).padStart(2, "0");
    return `${grouped(m)}:${s} ${locale().startsWith("tr") ? "dk" : "min"}`;
  }
  return amount(service, units);
}

export function date(epochSeconds) {
  return new Intl.DateTimeFormat(locale(), { day: "numeric", month: "long", year: "numeric" }).format(
    new Date(epochSeconds * 1000),
  );
}

export function dateTime(epochSeconds, withSeconds = false) {
  return new Intl.DateTimeFormat(locale(), {
    day: "numeric",
    month: "short",
    year: "numeric",
    hour: "2-digit",
    minute: "2-digit",
    second: withSeconds ? "2-digit" : undefined,
  }).format(new Date(epochSeconds * 1000));
}

export function number(n) {
  return grouped(n);
}
