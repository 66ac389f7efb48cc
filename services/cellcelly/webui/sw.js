// CellCelly service worker: the app shell is precached and served when the network is gone;
// /api goes to the network only (network-first) and its answers are never cached — they hold
// personal data — except the public package catalogue, kept as an offline fallback.
const VERSION = "cc-shell-v1";
const SHELL = [
  "/",
  "/index.html",
  "/manifest.webmanifest",
  "/css/app.css",
  "/js/app.js",
  "/js/api.js",
  "/js/charts.js",
  "/js/dom.js",
  "/js/format.js",
  "/js/forms.js",
  "/js/i18n.js",
  "/js/validate.js",
  "/js/views/common.js",
  "/js/views/dashboard.js",
  "/js/views/forgot.js",
  "/js/views/login.js",
  "/js/views/packages.js",
  "/js/views/password.js",
  "/js/views/register.js",
  "/js/views/topup.js",
  "/js/views/usage.js",
  "/icons/icon-192.png",
  "/icons/icon-512.png",
  "/icons/icon-maskable-192.png",
  "/icons/icon-maskable-512.png",
  "/icons/apple-touch-icon.png",
];
const PUBLIC_API = ["/api/v1/packages"];
const NETWORK_TIMEOUT_MS = 4000;

self.addEventListener("install", (event) => {
  event.waitUntil(
    caches.open(VERSION)
      .then((cache) => cache.addAll(SHELL.map((path) => new Request(path, { cache: "reload" }))))
      .then(() => self.skipWaiting()),
  );
});

self.addEventListener("activate", (event) => {
  event.waitUntil(
    caches.keys()
      .then((keys) => Promise.all(keys.filter((key) => key !== VERSION).map((key) => caches.delete(key))))
      .then(() => self.clients.claim()),
  );
});

function offlineProblem() {
  const body = JSON.stringify({ status: 503, title: "Offline", detail: "no network connection", cause: "OFFLINE" });
  return new Response(body, { status: 503, headers: { "Content-Type": "application/problem+json" } });
}

async function api(request, url) {
  try {
    const response = await fetch(request);
    if (request.method === "GET" && PUBLIC_API.includes(url.pathname) && response.ok) {
      const cache = await caches.open(VERSION);
      await cache.put(url.pathname, response.clone());
    }
    return response;
  } catch (_) {
    if (request.method === "GET" && PUBLIC_API.includes(url.pathname)) {
      const cached = await caches.match(url.pathname);
      if (cached) return cached;
    }
    return offlineProblem();
  }
}

function withTimeout(promise, ms) {
  return new Promise((resolve, reject) => {
    const timer = setTimeout(() => reject(new Error("timeout")), ms);
    promise.then((value) => { clearTimeout(timer); resolve(value); }, (err) => { clearTimeout(timer); reject(err); });
  });
}

/** Shell files: network first (so an update shows at once), the cached copy when offline or slow. */
async function shell(request, url) {
  const key = url.pathname;
  const cache = await caches.open(VERSION);
  try {
    const response = await withTimeout(fetch(request), NETWORK_TIMEOUT_MS);
    if (response.ok && response.type === "basic") await cache.put(key, response.clone());
    return response;
  } catch (_) {
    const cached = await cache.match(key);
    if (cached) return cached;
    return new Response("offline", { status: 503, headers: { "Content-Type": "text/plain; charset=utf-8" } });
  }
}

self.addEventListener("fetch", (event) => {
  const request = event.request;
  const url = new URL(request.url);
  if (url.origin !== self.location.origin) return;
  if (url.pathname.startsWith("/api/")) {
    event.respondWith(api(request, url));
    return;
  }
  if (request.method !== "GET") return;
  if (SHELL.includes(url.pathname)) {
    event.respondWith(shell(request, url));
  }
});
