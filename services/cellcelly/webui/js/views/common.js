// What the signed-in views share: a page frame and the "session is gone" handling.
import { clearSession } from "../api.js";
import { h } from "../dom.js";
import { t } from "../i18n.js";

/** A 401 after the one refresh means the session is over: back to login with a message. */
export function sessionOver(err, navigate) {
  if (err && err.status === 401) {
    clearSession();
    navigate("login", { key: "common.sessionExpired", kind: "error" });
    return true;
  }
  return false;
}

export function page(titleKey, ...children) {
  return h("section", { class: "page" }, h("h1", { "data-i18n": titleKey }, t(titleKey)), ...children);
}
