// Console: filter long checkbox lists as you type, and count what is checked.
// Everything works without this script; it only saves scrolling.
document.querySelectorAll("input[data-filter]").forEach((input) => {
  const list = document.getElementById(input.dataset.filter);
  input.addEventListener("input", () => {
    const wanted = input.value.trim().toLowerCase();
    list.querySelectorAll("label[data-search]").forEach((label) => {
      label.hidden = wanted !== "" && !label.dataset.search.includes(wanted);
    });
  });
});
document.querySelectorAll("[data-count]").forEach((list) => {
  const counter = document.getElementById(list.dataset.count);
  list.addEventListener("change", () => {
    counter.textContent = list.querySelectorAll("input:checked").length;
  });
});
