// Company autocomplete for the deal form: pick a match into the hidden company field, then
// ask htmx to reload the contact options. Delegated, so it survives htmx swaps of the form.
(function () {
  function picker(el) { return el && el.closest("[data-company-picker]"); }
  function options(box) { return Array.from(box.querySelectorAll("[data-company-id]")); }
  function close(box) { box.querySelector("[data-company-results]").replaceChildren(); }
  function choose(option) {
    var box = picker(option);
    var hidden = box.querySelector("input[type=hidden]");
    var input = box.querySelector("input[data-company-input]");
    hidden.value = option.dataset.companyId;
    input.value = option.dataset.companyName;
    close(box);
    input.focus();
    htmx.trigger("#contact-options", "company-picked");
  }
  document.addEventListener("click", function (event) {
    var option = event.target.closest("[data-company-id]");
    if (option) { choose(option); }
  });
  document.addEventListener("input", function (event) {
    if (event.target.matches("input[data-company-input]")) {
      // Typing again un-picks: the form must not save a company the name no longer shows.
      picker(event.target).querySelector("input[type=hidden]").value = "";
    }
  });
  document.addEventListener("keydown", function (event) {
    var box = picker(event.target);
    if (!box) { return; }
    var list = options(box);
    var index = list.indexOf(event.target);
    if (event.key === "Enter" && event.target.matches("input[data-company-input]")) {
      event.preventDefault();
      if (list.length) { choose(list[0]); }
    } else if (event.key === "ArrowDown" && list.length) {
      event.preventDefault();
      list[Math.min(index + 1, list.length - 1)].focus();
    } else if (event.key === "ArrowUp" && index >= 0) {
      event.preventDefault();
      (index === 0 ? box.querySelector("input[data-company-input]") : list[index - 1]).focus();
    } else if (event.key === "Escape") {
      close(box);
      box.querySelector("input[data-company-input]").focus();
    }
  });
})();
