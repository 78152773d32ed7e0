// Exact money. The API answers decimal cents as strings ("2345", "0.0315"); dollars
// are the same digits with the point moved two places, so nothing here goes through
// a binary float: formatting is string work, arithmetic is BigInt on scaled integers.

const CENTS = /^(-?)(\d+)(?:\.(\d+))?$/;
const DOLLARS = /^(\d{0,13})(?:\.(\d{0,10}))?$/;

function group(digits) {
  return digits.replace(/\B(?=(\d{3})+(?!\d))/g, ",");
}

/** "0.0315" (cents) -> "$0.000315"; at least two decimals, never a digit dropped. */
export function dollars(cents) {
  const match = CENTS.exec(String(cents ?? ""));
  if (!match) return "—";
  const [, sign, whole, fraction = ""] = match;
  const padded = whole.padStart(3, "0");
  const integer = padded.slice(0, -2).replace(/^0+(?=\d)/, "");
  let decimals = (padded.slice(-2) + fraction).replace(/0+$/, "");
  if (decimals.length < 2) decimals = decimals.padEnd(2, "0");
  const negative = sign === "-" && /[1-9]/.test(integer + decimals);
  return `${negative ? "-" : ""}$${group(integer)}.${decimals}`;
}

/** A decimal string as [BigInt, scale]: "12.5" -> [125n, 1]. */
function units(value) {
  const match = CENTS.exec(String(value ?? ""));
  if (!match) throw new Error(`not a decimal amount: ${value}`);
  const [, sign, whole, fraction = ""] = match;
  const n = BigInt(whole + fraction);
  return [sign === "-" ? -n : n, fraction.length];
}

function aligned(a, b) {
  const [x, sx] = units(a);
  const [y, sy] = units(b);
  const scale = Math.max(sx, sy);
  return [x * 10n ** BigInt(scale - sx), y * 10n ** BigInt(scale - sy), scale];
}

function decimal(n, scale) {
  const negative = n < 0n;
  const digits = (negative ? -n : n).toString().padStart(scale + 1, "0");
  const whole = digits.slice(0, digits.length - scale);
  const fraction = digits.slice(digits.length - scale).replace(/0+$/, "");
  return `${negative ? "-" : ""}${whole}${fraction ? `.${fraction}` : ""}`;
}

/** a - b, exactly, as a decimal string. */
export function subtract(a, b) {
  const [x, y, scale] = aligned(a, b);
  return decimal(x - y, scale);
}

/** a + b, exactly, as a decimal string. */
export function add(a, b) {
  const [x, y, scale] = aligned(a, b);
  return decimal(x + y, scale);
}

/** -1, 0 or 1. */
export function compare(a, b) {
  const [x, y] = aligned(a, b);
  return x < y ? -1 : x > y ? 1 : 0;
}

/** round(steps × value / max) as a plain number, for drawing only (0 when max is 0). */
export function share(value, max, steps) {
  const [x, y] = aligned(value, max);
  if (y <= 0n || x <= 0n) return 0;
  return Number((x * BigInt(steps) + y / 2n) / y);
}

/** What a person typed in dollars ("5", "0.50", "$1.25") -> cents as a decimal
 * string ("500", "50", "125"), or null if it is not a plain amount. */
export function centsFromDollars(text) {
  const cleaned = String(text ?? "").trim().replace(/^\$\s*/, "");
  const match = DOLLARS.exec(cleaned);
  if (!match || !/\d/.test(cleaned)) return null;
  const [, whole = "", fraction = ""] = match;
  const digits = (whole || "0") + fraction.padEnd(2, "0").slice(0, 2);
  const rest = fraction.slice(2).replace(/0+$/, "");
  const integer = digits.replace(/^0+(?=\d)/, "");
  return rest ? `${integer}.${rest}` : integer;
}

/** Cents (decimal string) -> what a dollar input shows: "500" -> "5", "0.0315" -> "0.000315". */
export function dollarsForInput(cents) {
  return dollars(cents).replace(/^\$/, "").replaceAll(",", "").replace(/\.?0+$/, "") || "0";
}
