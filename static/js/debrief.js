// Small behaviours shared by every page. Everything works without this file; it only adds
// keyboard comfort to the inline dialogs that htmx opens in #modal.
(function () {
  function modal() { return document.getElementById("modal"); }

  function closeModal() {
    const slot = modal();
    if (slot) slot.innerHTML = "";
  }

  document.addEventListener("click", (event) => {
    const trigger = event.target.closest("[data-dismiss-modal]");
    if (trigger && modal() && modal().contains(trigger)) {
      event.preventDefault();
      closeModal();
    }
  });

  document.addEventListener("keydown", (event) => {
    if (event.key === "Escape" && modal() && modal().children.length) closeModal();
  });

  // Focus the first answer when a dialog opens, so the keyboard can go straight on.
  document.addEventListener("htmx:afterSwap", (event) => {
    if (event.detail.target && event.detail.target.id === "modal") {
      const first = event.detail.target.querySelector(
        ".field-error, input:not([type=hidden]), select, textarea"
      );
      const input = first && first.classList.contains("field-error")
        ? first.closest(".field").querySelector("input, select, textarea")
        : first;
      if (input) input.focus();
    }
  });

  // A link to a folded <details> (e.g. "Write a debrief" at the top of the brief) unfolds it,
  // then the browser scrolls to it as to any anchor.
  document.addEventListener("click", (event) => {
    const link = event.target.closest("a[data-opens-details]");
    const target = link && document.querySelector(link.getAttribute("href"));
    if (target && target.tagName === "DETAILS") target.open = true;
  });

  // A form that comes back refused (e.g. the deal form over a suppression) puts its summary
  // above the fields, out of sight of the button that was pressed: bring it into view and move
  // focus to it, so that sighted and screen-reader users both meet the reason first.
  document.addEventListener("htmx:afterSettle", () => {
    const summary = document.querySelector("[data-focus-after-swap]");
    if (summary) {
      summary.removeAttribute("data-focus-after-swap");
      summary.scrollIntoView({ block: "start" });
      summary.focus({ preventScroll: true });
    }
  });

  // A <details data-remember-open> (the pipeline's filters, folded on a phone) is left alone by
  // the swaps that redraw the list under it; Back and Forward redraw the whole page from the
  // server, which draws it folded: open it again if it was open when the user went on.
  function rememberKey(details) { return "debrief:open:" + details.id; }
  function remember(details) {
    try { sessionStorage.setItem(rememberKey(details), details.open ? "1" : "0"); } catch (e) { /* storage off */ }
  }
  function remembered(details) {
    try { return sessionStorage.getItem(rememberKey(details)) === "1"; } catch (e) { return false; }
  }
  document.addEventListener("toggle", (event) => {
    if (event.target.matches && event.target.matches("details[data-remember-open][id]")) remember(event.target);
  }, true);
  // A fresh visit starts as the server drew it.
  document.querySelectorAll("details[data-remember-open][id]").forEach(remember);
  document.addEventListener("htmx:historyRestore", () => {
    document.querySelectorAll("details[data-remember-open][id]").forEach((details) => {
      if (remembered(details)) details.open = true;
    });
  });

  // The call-list summary is about the file that was checked: choosing another file takes it
  // (and its download button) away until that one is checked.
  document.addEventListener("change", (event) => {
    if (!event.target.matches("#call-list-form input[type=file]")) return;
    const result = document.getElementById("call-list-result");
    if (result) result.replaceChildren();
  });
})();
