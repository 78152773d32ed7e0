// CSV for spreadsheets. A cell that starts with = + - @ (or a tab or carriage return)
// would run as a formula in Excel or LibreOffice: such cells get a leading apostrophe,
// since key names and model names are chosen by users and configuration.

const RISKY = /^[=+\-@\t\r]/;

function cell(value) {
  let text = value === null || value === undefined ? "" : String(value);
  if (RISKY.test(text)) text = `'${text}`;
  return /[",\n\r]/.test(text) ? `"${text.replaceAll('"', '""')}"` : text;
}

/** Rows (arrays) to CSV text, with CRLF line ends as RFC 4180 says. */
export function csv(header, rows) {
  return [header, ...rows].map((row) => row.map(cell).join(",")).join("\r\n") + "\r\n";
}

/** Offer text as a file download. */
export function download(name, text) {
  const url = URL.createObjectURL(new Blob([text], { type: "text/csv;charset=utf-8" }));
  const link = document.createElement("a");
  link.href = url;
  link.download = name;
  document.body.append(link);
  link.click();
  link.remove();
  setTimeout(() => URL.revokeObjectURL(url), 10_000);
}
