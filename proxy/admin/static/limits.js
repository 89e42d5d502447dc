// A key's limits on the page: the New API Key dialog's limit inputs, and chips in the keys table.
// Names as the admin API has them (SPEC §9); empty inputs mean "no limit".

export const LIMITS = [
  ["requests_per_minute", "Requests / minute", "rpm"],
  ["tokens_per_minute", "Tokens / minute", "tpm"],
  ["max_concurrent_requests", "Concurrent requests", "concurrent"],
  ["tokens_per_month", "Tokens / month", "tokens/mo"],
  ["usd_per_month", "USD / month", "USD/mo"],
  ["max_tokens_per_request", "Max tokens / request", "max tokens"],
];

// The `limits` object of a create call (undefined when every input is empty).
export function limitsFromForm(form = document) {
  const limits = {};
  for (const [name] of LIMITS) {
    const input = form.querySelector(`input[name="limit-${name}"]`);
    const text = input ? input.value.trim() : "";
    if (text) limits[name] = name === "usd_per_month" ? Number(text) : Number.parseInt(text, 10);
  }
  return Object.keys(limits).length ? limits : undefined;
}

// Adds the key's limits (if any) to a table cell as chips, after what the cell already shows.
export function withLimits(cell, key) {
  const limits = key.limits || {};
  const set = LIMITS.filter(([name]) => limits[name] !== null && limits[name] !== undefined);
  if (!set.length) return cell;
  const list = document.createElement("ul");
  list.className = "chips chips-limits";
  list.setAttribute("aria-label", "Limits");
  for (const [name, label, short] of set) {
    const chip = document.createElement("li");
    chip.className = "chip chip-limit";
    chip.title = label;
    chip.textContent = `${limits[name]} ${short}`;
    list.append(chip);
  }
  cell.classList.remove("muted");
  cell.append(list);
  return cell;
}
