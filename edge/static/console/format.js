// Numbers and times for people. Counts are integers from the API (exact in a double);
// money never comes here (see money.js).

const DATE_TIME = new Intl.DateTimeFormat(undefined, { dateStyle: "medium", timeStyle: "short" });
const DATE = new Intl.DateTimeFormat(undefined, { dateStyle: "medium" });
const SHORT = new Intl.DateTimeFormat(undefined, { month: "short", day: "numeric", hour: "2-digit", minute: "2-digit", second: "2-digit" });

export function count(n) {
  return Number(n || 0).toLocaleString("en-US");
}

/** A moment, in the reader's own time zone; "—" for none. */
export function when(iso) {
  if (!iso) return "—";
  const moment = new Date(iso);
  return Number.isNaN(moment.getTime()) ? "—" : DATE_TIME.format(moment);
}

/** A moment in a log row: month, day and time to the second. */
export function moment(iso) {
  if (!iso) return "—";
  const value = new Date(iso);
  return Number.isNaN(value.getTime()) ? "—" : SHORT.format(value);
}

export function day(iso) {
  if (!iso) return "—";
  const moment = new Date(iso);
  return Number.isNaN(moment.getTime()) ? "—" : DATE.format(moment);
}

/** "YYYY-MM-DD" of a Date in UTC. */
export function utcDay(date) {
  return date.toISOString().slice(0, 10);
}

/** "YYYY-MM-DDTHH:00:00Z" of a Date's UTC hour. */
export function utcHour(date) {
  return `${date.toISOString().slice(0, 13)}:00:00Z`;
}

const STATUS = { success: "Success", error: "Error", client_aborted: "Client left", interrupted: "Interrupted" };

export function status(value) {
  return STATUS[value] || String(value);
}
