// Drag a board card onto another column to move the deal there. The arrow buttons on each
// card do the same without a mouse; this only adds the drag gesture on top of them.
document.addEventListener("dragstart", (event) => {
  const card = event.target.closest && event.target.closest(".board-card");
  if (!card) return;
  event.dataTransfer.setData("text/plain", card.dataset.moveUrl);
  event.dataTransfer.effectAllowed = "move";
  card.classList.add("dragging");
});

document.addEventListener("dragend", (event) => {
  const card = event.target.closest && event.target.closest(".board-card");
  if (card) card.classList.remove("dragging");
});

document.addEventListener("dragover", (event) => {
  const column = event.target.closest && event.target.closest(".board-column");
  if (!column) return;
  event.preventDefault();
  column.classList.add("drop-target");
});

document.addEventListener("dragleave", (event) => {
  const column = event.target.closest && event.target.closest(".board-column");
  if (column && !column.contains(event.relatedTarget)) column.classList.remove("drop-target");
});

document.addEventListener("drop", (event) => {
  const column = event.target.closest && event.target.closest(".board-column");
  if (!column) return;
  event.preventDefault();
  column.classList.remove("drop-target");
  const url = event.dataTransfer.getData("text/plain");
  if (!url || !window.htmx) return;
  htmx.ajax("POST", url, {
    target: "#board",
    swap: "outerHTML",
    values: { to: column.dataset.stage },
  });
});
