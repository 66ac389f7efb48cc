// Client-side checks with the same rules and codes as the MW (cellcelly.domain.selfcare_rules; a
// browser test checks they agree), so a message appears before anything is sent and reads the same.
// Each check returns a list of codes (empty = valid).

const LETTER = /\p{L}/u;
const UPPER = /\p{Lu}/u; // "Ş", "İ", "Ç" count
const LOWER = /\p{Ll}/u; // "ğ", "ı", "ş" count
const SPECIAL = /[^\p{L}\p{N}\s]/u; // not a letter, digit or space (a space does not count, as on the server)
const NAME = /^[\p{L} '\-]{1,50}$/u;
const EMAIL = /^[^\s@]{1,64}@[^\s@.]+(\.[^\s@.]+)+$/u;

export const PASSWORD_RULES = ["too_short", "needs_upper", "needs_lower", "needs_special"];

export function msisdn(value) {
  if (!value) return ["required"];
  return /^5\d{9}$/.test(value) ? [] : ["msisdn_format"];
}

export function password(value) {
  if (!value) return ["required"];
  const codes = [];
  const length = [...value].length;
  if (length < 8) codes.push("too_short");
  if (length > 128) codes.push("too_long");
  if (!UPPER.test(value)) codes.push("needs_upper");
  if (!LOWER.test(value)) codes.push("needs_lower");
  if (!SPECIAL.test(value)) codes.push("needs_special");
  return codes;
}

/** Which of the four visible rules a password meets (for the live checklist). */
export function passwordRules(value) {
  const missing = new Set(password(value || ""));
  if (!value) PASSWORD_RULES.forEach((rule) => missing.add(rule));
  return PASSWORD_RULES.map((rule) => ({ rule, met: !missing.has(rule) }));
}

export function name(value) {
  const v = (value || "").trim();
  if (!v) return ["required"];
  if ([...v].length > 50) return ["too_long"];
  return NAME.test(v) && LETTER.test(v) ? [] : ["name_format"];
}

export function email(value) {
  const v = (value || "").trim();
  if (!v) return ["required"];
  return EMAIL.test(v) && v.length <= 254 ? [] : ["email_format"];
}

export function securityKey(value) {
  if (!value) return ["required"];
  const length = [...value].length;
  return length >= 4 && length <= 32 ? [] : ["security_key_format"];
}

export function code(value) {
  if (!value) return ["required"];
  return /^\d{6}$/.test(value) ? [] : ["code_format"];
}

/** Spaces and dashes are what a printed card has between groups; the server drops them too. */
export function voucher(value) {
  const v = (value || "").replace(/[\s-]/g, "");
  if (!v) return ["required"];
  return /^\d{16}$/.test(v) ? [] : ["voucher_format"];
}

export function required(value) {
  return value ? [] : ["required"];
}

export function same(value, other) {
  if (!value) return ["required"];
  return value === other ? [] : ["mismatch"];
}
