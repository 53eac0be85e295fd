// Narrow the class list as the visitor types. Without JavaScript the form stays
// hidden and the whole list is shown, so nothing here is needed to browse.
(function () {
  var form = document.getElementById("class-filter-form");
  var box = document.getElementById("class-filter");
  var count = document.getElementById("class-count");
  var items = Array.prototype.slice.call(document.querySelectorAll("#class-list > li"));
  if (!form || !box) return;
  form.hidden = false;
  function apply() {
    var words = box.value.toLowerCase().split(/\s+/).filter(Boolean);
    var shown = 0;
    items.forEach(function (li) {
      var text = li.getAttribute("data-search");
      var hit = words.every(function (w) { return text.indexOf(w) !== -1; });
      li.hidden = !hit;
      if (hit) shown++;
    });
    count.textContent = shown + " of " + items.length + " classes";
  }
  box.addEventListener("input", apply);
  apply();
})();
