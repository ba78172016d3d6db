// Keyboard review on a bot page: j/k move between queued candidates, a approves, r rejects.
// Plain forms do the work; this only picks which form's button to press.
document.addEventListener("DOMContentLoaded", () => {
  const items = Array.from(document.querySelectorAll("li.candidate"));
  if (!items.length) return;
  let at = 0;
  const select = (i) => {
    items[at].classList.remove("selected");
    at = Math.max(0, Math.min(items.length - 1, i));
    items[at].classList.add("selected");
    items[at].scrollIntoView({ block: "nearest" });
  };
  select(0);
  const buttons = { a: "button.approve", r: "button.reject" };
  document.addEventListener("keydown", (event) => {
    if (event.target.closest("textarea, input, select") || event.ctrlKey || event.metaKey || event.altKey) return;
    if (event.key === "j") select(at + 1);
    else if (event.key === "k") select(at - 1);
    else if (buttons[event.key]) items[at].querySelector(buttons[event.key]).click();
    else return;
    event.preventDefault();
  });
});
