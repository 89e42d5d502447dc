// Native <dialog> handling: modal open with focus return, the show-once secret dialog, the toast.

const openers = new WeakMap();

export function openDialog(dialog, opener = document.activeElement) {
  openers.set(dialog, opener);
  dialog.showModal();
}

export function closeDialog(dialog) {
  if (dialog.open) dialog.close();
}

// Every dialog: [data-close] buttons close it; closing (button or Escape) sends focus back to
// whatever opened it, or to the page heading when that element is gone (a row that re-rendered).
export function wireDialogs(fallbackFocus) {
  for (const dialog of document.querySelectorAll("dialog")) {
    for (const button of dialog.querySelectorAll("[data-close]")) {
      button.addEventListener("click", () => closeDialog(dialog));
    }
    dialog.addEventListener("close", () => {
      const opener = openers.get(dialog);
      openers.delete(dialog);
      const target = opener && opener.isConnected ? opener : fallbackFocus();
      if (target && !document.querySelector("dialog[open]")) target.focus();
    });
  }
}

export function resetForm(form) {
  form.reset();
  for (const error of form.querySelectorAll(".form-error")) error.textContent = "";
  for (const invalid of form.querySelectorAll("[aria-invalid]")) invalid.removeAttribute("aria-invalid");
}

async function copyText(input) {
  try {
    await navigator.clipboard.writeText(input.value);
    return true;
  } catch {
    // No clipboard API (a plain-http admin listener on another host is not a secure context):
    // select the text and use the legacy command.
    input.focus();
    input.select();
    return document.execCommand("copy");
  }
}

export class SecretDialog {
  constructor(dialog) {
    this.dialog = dialog;
    this.value = dialog.querySelector("#secret-value");
    this.context = dialog.querySelector("#secret-context");
    this.status = dialog.querySelector("#copy-status");
    this.copyButton = dialog.querySelector("#copy-secret");
    this.copyButton.addEventListener("click", () => this.copy());
    this.value.addEventListener("focus", () => this.value.select());
    // The key leaves the page as soon as the dialog closes: nothing can show it again.
    dialog.addEventListener("close", () => {
      this.value.value = "";
      this.status.textContent = "";
      this.copyButton.textContent = "Copy";
    });
  }

  show(secret, contextText, opener) {
    this.value.value = secret;
    this.context.textContent = contextText;
    this.status.textContent = "";
    openDialog(this.dialog, opener);
    this.copyButton.focus();
  }

  async copy() {
    const copied = await copyText(this.value);
    this.copyButton.textContent = copied ? "Copied" : "Copy";
    this.status.textContent = copied
      ? "Copied to the clipboard."
      : "Could not copy automatically: the key is selected, press Ctrl+C (⌘C on a Mac).";
  }
}

export class Toast {
  constructor(node) {
    this.node = node;
    this.timer = null;
  }

  show(message, kind = "info") {
    clearTimeout(this.timer);
    this.node.textContent = message;
    this.node.dataset.kind = kind;
    this.node.hidden = false;
    this.timer = setTimeout(() => {
      this.node.hidden = true;
    }, 8000);
  }
}
