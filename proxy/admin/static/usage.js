// Usage on the keys table: this month's totals (from the key object) and a small chart of tokens per
// day over the last 30 days (from GET /admin/keys/{id}/usage). Inline SVG built with the DOM: no
// library, no inline style (the page's CSP forbids it); colours come from app.css.

const SVG = "http://www.w3.org/2000/svg";
export const CHART_DAYS = 30;
const WIDTH = 60;
const HEIGHT = 28;
const DAY_MS = 86400000;
const compact = new Intl.NumberFormat("en-US", { notation: "compact", maximumFractionDigits: 1 });
const dollars = new Intl.NumberFormat("en-US", { style: "currency", currency: "USD", maximumFractionDigits: 4 });

function svg(tag, attributes = {}) {
  const node = document.createElementNS(SVG, tag);
  for (const [name, value] of Object.entries(attributes)) node.setAttribute(name, String(value));
  return node;
}

// The first day of the chart (UTC midnight, 29 days before today).
export function chartStart(now = Date.now()) {
  const today = new Date(now);
  today.setUTCHours(0, 0, 0, 0);
  return new Date(today.getTime() - (CHART_DAYS - 1) * DAY_MS);
}

// Tokens per day, oldest first, from a usage report by day (days without use are absent from it).
export function dailyTokens(report, start) {
  const days = new Array(CHART_DAYS).fill(0);
  for (const bucket of report.data) {
    const index = Math.round((Date.parse(bucket.start) - start.getTime()) / DAY_MS);
    if (index >= 0 && index < CHART_DAYS) days[index] += bucket.input_tokens + bucket.output_tokens;
  }
  return days;
}

export function usageChart(days) {
  const total = days.reduce((a, b) => a + b, 0);
  const peak = Math.max(...days);
  const label = `Tokens per day, last ${CHART_DAYS} days: ${compact.format(total)} in all, at most ${compact.format(peak)} a day`;
  const chart = svg("svg", { class: "usage-chart", viewBox: `0 0 ${WIDTH} ${HEIGHT}`, width: WIDTH, height: HEIGHT,
    role: "img", "aria-label": label });
  const title = svg("title");
  title.textContent = label;
  chart.append(title, svg("line", { class: "usage-axis", x1: 0, x2: WIDTH, y1: HEIGHT - 0.5, y2: HEIGHT - 0.5 }));
  const step = WIDTH / CHART_DAYS;
  days.forEach((tokens, i) => {
    if (!tokens) return;
    const height = Math.max(1.5, (tokens / peak) * (HEIGHT - 2));
    chart.append(svg("rect", { class: "usage-bar", x: (i * step + 0.25).toFixed(2), y: (HEIGHT - 1 - height).toFixed(2),
      width: (step - 0.5).toFixed(2), height: height.toFixed(2), "data-tokens": tokens }));
  });
  return chart;
}

// The table cell: this month's tokens, cost and requests, and a slot the chart is drawn into.
export function usageCell(key, el) {
  const u = key.usage_this_month;
  if (!u) return el("td", { class: "muted" }, el("span", { text: "—" }));
  const tokens = u.input_tokens + u.output_tokens;
  const detail = `This month: ${u.input_tokens} input and ${u.output_tokens} output tokens, ${u.requests} requests`;
  return el("td", { class: "usage-cell" },
    el("span", { class: "usage-total", title: detail, text: `${compact.format(tokens)} tokens` }),
    el("span", { class: "sub", text: `${dollars.format(u.usd)} · ${compact.format(u.requests)} req` }),
    el("span", { class: "usage-slot", "data-usage-chart": key.id }));
}
