// The shell: hash routes, the header (language switch, menu, logout), the offline banner and
// the service worker registration. Views live in ./views/ and return {el, onLang?}.
import { api, hasSession } from "./api.js";
import { h } from "./dom.js";
import { getLang, onLangChange, setLang, t, translate } from "./i18n.js";
import * as login from "./views/login.js";
import * as register from "./views/register.js";
import * as forgot from "./views/forgot.js";
import * as dashboard from "./views/dashboard.js";
import * as usage from "./views/usage.js";
import * as packages from "./views/packages.js";
import * as topup from "./views/topup.js";
import * as password from "./views/password.js";

const PUBLIC = { login, register, forgot };
const PRIVATE = { dashboard, usage, packages, topup, password };
const MENU = [
  ["dashboard", "nav.dashboard"],
  ["usage", "nav.usage"],
  ["packages", "nav.packages"],
  ["topup", "nav.topup"],
  ["password", "nav.password"],
];

const main = document.getElementById("main");
const nav = document.getElementById("nav");
const langButton = document.getElementById("lang");
const logoutButton = document.getElementById("logout");
const offline = document.getElementById("offline");
let current = null;
let flash = null;

export function navigate(route, message = null) {
  flash = message;
  if (location.hash === `#/${route}`) show();
  else location.hash = `#/${route}`;
}

function routeName() {
  const name = location.hash.replace(/^#\/?/, "").split("?")[0];
  if (name in PUBLIC || name in PRIVATE) return name;
  return hasSession() ? "dashboard" : "login";
}

function renderNav(name) {
  const isPrivate = name in PRIVATE;
  nav.hidden = !isPrivate;
  logoutButton.hidden = !isPrivate;
  nav.replaceChildren(
    h("ul", {}, MENU.map(([route, key]) =>
      h("li", {}, h("a", {
        href: `#/${route}`,
        "data-i18n": key,
        "aria-current": route === name ? "page" : false,
      }, t(key))))),
  );
}

function show() {
  const name = routeName();
  if (name in PRIVATE && !hasSession()) {
    navigate("login", flash);
    return;
  }
  if (location.hash !== `#/${name}`) history.replaceState(null, "", `#/${name}`);
  renderNav(name);
  const view = (PUBLIC[name] || PRIVATE[name]).render({ navigate, flash });
  flash = null;
  current = view;
  main.replaceChildren(view.el);
  document.body.dataset.view = name;
  const heading = main.querySelector("h1");
  document.title = `${heading ? heading.textContent + " · " : ""}${t("app.name")}`;
  if (heading) {
    heading.setAttribute("tabindex", "-1");
    heading.focus({ preventScroll: true });
  }
}

function applyLang() {
  document.documentElement.lang = getLang();
  langButton.textContent = t("lang.switch");
  langButton.setAttribute("aria-label", t("lang.switchLabel"));
  translate(document);
  current?.onLang?.();
  const heading = main.querySelector("h1");
  document.title = `${heading ? heading.textContent + " · " : ""}${t("app.name")}`;
}

document.getElementById("skip").addEventListener("click", () => main.focus());
langButton.addEventListener("click", () => setLang(getLang() === "tr" ? "en" : "tr"));
logoutButton.addEventListener("click", async () => {
  await api.logout();
  navigate("login", "login.loggedOut");
});
onLangChange(applyLang);
window.addEventListener("hashchange", show);

function updateOnline() {
  offline.hidden = navigator.onLine;
}
window.addEventListener("online", updateOnline);
window.addEventListener("offline", updateOnline);

applyLang();
updateOnline();
show();
document.body.dataset.ready = "true";

if ("serviceWorker" in navigator) {
  navigator.serviceWorker.register("/sw.js", { scope: "/" }).catch(() => {
    /* no offline shell, the app still works online */
  });
}
