// Narrow a long list (classes, concepts) as the visitor types. Every form with a
// data-filter attribute filters the <li>s of the list it names. Without JavaScript
// the forms stay hidden and the whole lists are shown, so nothing here is needed to browse.
(function () {
  Array.prototype.forEach.call(document.querySelectorAll("form[data-filter]"), function (form) {
    var box = form.querySelector("input");
    var count = form.querySelector(".filter-count");
    var noun = form.getAttribute("data-noun") || "items";
    var items = Array.prototype.slice.call(document.querySelectorAll(form.getAttribute("data-filter") + " > li"));
    if (!box) return;
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
      if (count) count.textContent = shown + " of " + items.length + " " + noun;
    }
    box.addEventListener("input", apply);
    apply();
  });
})();
