// Meter search: suggestions as the operator types (prefix matches first), keyboard navigable.
(function () {
  const input = document.getElementById("meter-search");
  const list = document.getElementById("suggestions");
  if (!input || !list) return;
  let active = -1, timer = null, items = [];

  function render() {
    list.innerHTML = "";
    items.forEach((m, i) => {
      const li = document.createElement("li");
      li.setAttribute("role", "option");
      li.id = "suggestion-" + i;
      li.textContent = m;
      if (i === active) { li.classList.add("active"); li.setAttribute("aria-selected", "true"); }
      li.addEventListener("mousedown", (e) => { e.preventDefault(); open(m); });
      list.appendChild(li);
    });
    list.hidden = items.length === 0;
    input.setAttribute("aria-expanded", String(items.length > 0));
    input.setAttribute("aria-activedescendant", active >= 0 ? "suggestion-" + active : "");
  }
  function open(meter) { window.location.href = "/ppu/meters/" + encodeURIComponent(meter); }
  async function suggest() {
    const q = input.value.replace(/[^A-Za-z0-9]/g, "");
    if (!q) { items = []; active = -1; render(); return; }
    const r = await fetch("/api/v1/meters?q=" + encodeURIComponent(q), { credentials: "same-origin" });
    if (!r.ok) return;
    items = await r.json();
    active = -1;
    render();
  }
  input.addEventListener("input", () => { clearTimeout(timer); timer = setTimeout(suggest, 120); });
  input.addEventListener("keydown", (e) => {
    if (e.key === "ArrowDown" && items.length) { active = (active + 1) % items.length; render(); e.preventDefault(); }
    else if (e.key === "ArrowUp" && items.length) { active = (active - 1 + items.length) % items.length; render(); e.preventDefault(); }
    else if (e.key === "Enter" && active >= 0) { open(items[active]); e.preventDefault(); }
    else if (e.key === "Escape") { items = []; active = -1; render(); }
  });
})();
