// Sort by any column (numbers as numbers, empty cells last); the order is kept in the address
// (#sort=KEY-asc) so a sorted view can be shared or reloaded.
(function () {
  const table = document.getElementById("patients");
  const heads = Array.from(table.tHead.rows[0].cells);
  function sortBy(key, dir) {
    const col = heads.findIndex((th) => th.dataset.key === key);
    if (col < 0) return;
    const body = table.tBodies[0];
    const rows = Array.from(body.rows);
    const value = (r) => r.cells[col].dataset.v ?? r.cells[col].textContent;
    const numeric = rows.every((r) => value(r) === "" || !isNaN(Number(value(r))));
    rows.sort((a, b) => {
      const va = value(a), vb = value(b);
      if (va === "" || vb === "") return (va === "") - (vb === "");
      const c = numeric ? Number(va) - Number(vb) : va.localeCompare(vb, undefined, { numeric: true });
      return dir === "desc" ? -c : c;
    });
    rows.forEach((r) => body.appendChild(r));
    heads.forEach((th) => th.classList.remove("asc", "desc"));
    heads[col].classList.add(dir);
    history.replaceState(null, "", "#sort=" + key + "-" + dir);
  }
  heads.forEach((th) =>
    th.addEventListener("click", () => sortBy(th.dataset.key, th.classList.contains("asc") ? "desc" : "asc"))
  );
  const m = /^#sort=([a-z]+)-(asc|desc)$/.exec(location.hash);
  if (m) sortBy(m[1], m[2]);
  const only = document.getElementById("only-flagged");
  only.addEventListener("change", () => document.body.classList.toggle("only-flagged", only.checked));
})();
