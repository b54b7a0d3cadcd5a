// The API-key dialog: shown when the server answers 401; the key lives in sessionStorage only.

let waiting = []; // resolvers of askKey() calls made while the dialog is open

function settle(value) {
  const resolvers = waiting;
  waiting = [];
  resolvers.forEach((resolve) => resolve(value));
}

export function initKeyDialog() {
  const dialog = document.getElementById("key-dialog");
  const input = document.getElementById("key-input");
  document.getElementById("key-form").addEventListener("submit", (event) => {
    event.preventDefault();
    const save = event.submitter && event.submitter.value === "save";
    const key = input.value.trim();
    input.value = "";
    dialog.close();
    settle(save && key ? key : null);
  });
  dialog.addEventListener("cancel", () => settle(null));
}

/** Ask for a key (``reason``: the server's 401 message); resolves to the key, or null on cancel. */
export function askKey(reason) {
  const dialog = document.getElementById("key-dialog");
  const note = dialog.querySelector("p");
  note.textContent = `${reason ? `${reason} ` : ""}The key is kept in this tab only (sessionStorage).`;
  if (!dialog.open) dialog.showModal();
  document.getElementById("key-input").focus();
  return new Promise((resolve) => waiting.push(resolve));
}
