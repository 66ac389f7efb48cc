// SVG donut and CSS bar charts, drawn by hand (no chart library). Both carry a text alternative.
import { h, svg } from "./dom.js";

const R = 42;
const CIRCUMFERENCE = 2 * Math.PI * R;

/** Share of total that is left, 0..1 (0 when there is no total). */
export function share(remaining, total) {
  if (!total || total <= 0) return 0;
  return Math.max(0, Math.min(1, remaining / total));
}

export function donut({ remaining, total, label, centre, kind }) {
  const fraction = share(remaining, total);
  const arc = fraction * CIRCUMFERENCE;
  return svg(
    "svg",
    { viewBox: "0 0 100 100", class: `donut ${kind}`, role: "img", "aria-label": label, "data-fraction": fraction.toFixed(4) },
    svg("title", {}, label),
    svg("circle", { cx: 50, cy: 50, r: R, class: "track" }),
    svg("circle", {
      cx: 50,
      cy: 50,
      r: R,
      class: "fill",
      "stroke-dasharray": `${arc.toFixed(2)} ${(CIRCUMFERENCE - arc).toFixed(2)}`,
      transform: "rotate(-90 50 50)",
    }),
    svg("text", { x: 50, y: 54, "text-anchor": "middle", class: "centre" }, centre),
  );
}

export function bar({ fraction, label, kind }) {
  const pct = (Math.max(0, Math.min(1, fraction)) * 100).toFixed(1);
  return h(
    "div",
    { class: `bar ${kind || ""}`, role: "meter", "aria-valuemin": 0, "aria-valuemax": 100, "aria-valuenow": pct, "aria-label": label },
    h("div", { class: "bar-fill", style: `width: ${pct}%` }),
  );
}
