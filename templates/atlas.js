// The activation atlas page: zoom and pan over grid levels, tooltips, a cell's details,
// a class filter and a shareable link. Without JavaScript the coarsest grid stays as
// drawn by the page. Data: the JSON in #atlas-data (cells: [row, column, count, icon,
// classes [[class, attribution]], channels [[index, value, page]], photos [[name, patch]],
// features [[feature, mean code, page]] of the layer's dictionary, where it has one]).
(function () {
  var box = document.getElementById("atlas");
  var world = document.getElementById("atlas-world");
  var source = document.getElementById("atlas-data");
  if (!box || !world || !source) return;
  var data = JSON.parse(source.textContent);
  var levels = data.levels;
  var tools = document.getElementById("atlas-tools");
  var tip = document.getElementById("atlas-tip");
  var detail = document.getElementById("atlas-detail");
  var levelLabel = document.getElementById("atlas-level");
  var classBox = document.getElementById("atlas-class");
  var labelBy = document.getElementById("atlas-label-by");
  // zoom, centre (fractions of the atlas), class filter, what labels the cells
  var view = { z: 1, x: 0.5, y: 0.5, c: null, l: data.classes ? "class" : "feature" };
  var built = {};
  tools.hidden = false;

  function name(c) { return data.names[String(c)] || ("class " + c); }
  function text(tag, value, cls) {
    var el = document.createElement(tag);
    el.textContent = value;
    if (cls) el.className = cls;
    return el;
  }

  // One level's cells as positioned elements; level 0 is already in the page.
  function build(index) {
    if (built[index]) return built[index];
    var level = levels[index];
    var holder = world.querySelector('.atlas-level[data-level="' + index + '"]');
    var peak = Math.max.apply(null, level.cells.map(function (c) { return c[2]; }).concat([1]));
    if (!holder) {
      holder = document.createElement("div");
      holder.className = "atlas-level";
      holder.setAttribute("data-level", index);
      level.cells.forEach(function (cell, n) {
        var scale = 0.5 + 0.5 * Math.sqrt(cell[2] / peak);
        var el = document.createElement("div");
        el.className = "atlas-cell";
        el.setAttribute("data-cell", n);
        el.style.left = ((cell[1] + (1 - scale) / 2) / level.size * 100) + "%";
        el.style.top = ((cell[0] + (1 - scale) / 2) / level.size * 100) + "%";
        el.style.width = el.style.height = (scale / level.size * 100) + "%";
        if (cell[3]) {
          var img = document.createElement("img");
          img.src = cell[3];
          img.alt = "icon of " + cell[2] + " activations";
          img.loading = "lazy";
          el.appendChild(img);
        }
        holder.appendChild(el);
      });
      world.appendChild(holder);
    }
    Array.prototype.forEach.call(holder.querySelectorAll(".atlas-cell"), function (el) { el.removeAttribute("title"); });
    built[index] = holder;
    relabel(index);
    return holder;
  }

  // A cell's label: its leading class with that class's share, or its strongest feature.
  function labelOf(cell) {
    if (view.l === "feature") return cell[7] && cell[7].length ? "feature " + cell[7][0][0] : "";
    return cell[4].length && data.classes ? name(cell[4][0][0]) + " " + percent(share(cell, 0)) : "";
  }

  function relabel(index) {
    var level = levels[index];
    Array.prototype.forEach.call(built[index].querySelectorAll(".atlas-cell"), function (el) {
      var value = labelOf(level.cells[+el.getAttribute("data-cell")]);
      var span = el.querySelector(".atlas-label");
      if (!value) { if (span) el.removeChild(span); return; }
      if (!span) { span = text("span", "", "atlas-label"); el.appendChild(span); }
      span.textContent = value;
    });
  }

  // A class's share of the cell's attribution: its attribution over the sum of the positive
  // attributions of the cell's listed classes (the top 20), so a label says how much of the
  // push it carries, not only that it leads.
  function share(cell, k) {
    var total = cell[4].reduce(function (sum, pair) { return sum + Math.max(pair[1], 0); }, 0);
    return total > 0 ? Math.max(cell[4][k][1], 0) / total : 0;
  }

  function percent(x) { return Math.round(x * 100) + " %"; }

  function levelFor(z) { return Math.max(0, Math.min(levels.length - 1, Math.floor(Math.log2(z) + 1e-9))); }

  function apply() {
    view.z = Math.max(1, Math.min(Math.pow(2, levels.length + 1), view.z));
    var half = 0.5 / view.z;
    view.x = Math.max(half, Math.min(1 - half, view.x));
    view.y = Math.max(half, Math.min(1 - half, view.y));
    var shown = levelFor(view.z);
    for (var i = 0; i < levels.length; i++) {
      if (i === shown) build(i).hidden = false;
      else if (built[i] || i === 0) build(i).hidden = true;
    }
    world.style.transform = "translate(" + ((0.5 - view.x * view.z) * 100) + "%, " + ((0.5 - view.y * view.z) * 100) +
      "%) scale(" + view.z + ")";
    world.style.setProperty("--zoom", view.z);
    levelLabel.textContent = "grid " + levels[shown].size + "×" + levels[shown].size + " · zoom " + view.z.toFixed(2) + "×";
    fade();
    var hash = "z=" + view.z.toFixed(3) + "&x=" + view.x.toFixed(4) + "&y=" + view.y.toFixed(4) +
      (view.c !== null ? "&c=" + view.c : "") + (view.l === "feature" && data.classes ? "&l=feature" : "");
    if (location.hash.slice(1) !== hash) history.replaceState(null, "", "#" + hash);
  }

  // The class filter: each cell fades by its attribution to the chosen class, relative to
  // the strongest cell of its level (a class outside a cell's top classes counts as none).
  function fade() {
    levels.forEach(function (level, index) {
      if (!built[index]) return;
      var values = level.cells.map(function (cell) {
        if (view.c === null) return 1;
        var hit = cell[4].filter(function (pair) { return pair[0] === view.c; })[0];
        return hit ? Math.max(0, hit[1]) : 0;
      });
      var peak = Math.max.apply(null, values.concat([1e-12]));
      Array.prototype.forEach.call(built[index].querySelectorAll(".atlas-cell"), function (el) {
        var v = values[+el.getAttribute("data-cell")];
        el.style.opacity = view.c === null ? "" : String(0.08 + 0.92 * v / peak);
      });
    });
  }

  function cellAt(target) {
    var el = target.closest ? target.closest(".atlas-cell") : null;
    if (!el) return null;
    var index = +el.parentNode.getAttribute("data-level");
    return { el: el, level: index, cell: levels[index].cells[+el.getAttribute("data-cell")] };
  }

  box.addEventListener("mousemove", function (event) {
    var found = cellAt(event.target);
    if (!found) { tip.hidden = true; return; }
    tip.textContent = "";
    var list = document.createElement("ol");
    found.cell[4].slice(0, 5).forEach(function (pair, k) {
      list.appendChild(text("li", name(pair[0]) + " " + percent(share(found.cell, k)) + " (" + pair[1].toFixed(3) + ")"));
    });
    if (data.classes && found.cell[4].length) tip.appendChild(list);
    if (found.cell[7] && found.cell[7].length) {
      tip.appendChild(text("div", "features " + found.cell[7].map(function (f) { return f[0]; }).join(", ")));
    }
    tip.appendChild(text("div", "average of " + found.cell[2] + " activations", "muted"));
    var rect = box.getBoundingClientRect();
    tip.style.left = (event.clientX - rect.left + 14) + "px";
    tip.style.top = (event.clientY - rect.top + 14) + "px";
    tip.hidden = false;
  });
  box.addEventListener("mouseleave", function () { tip.hidden = true; });

  // A click (not a drag) shows the cell's details: its icon, classes, channels and photos.
  var drag = null;
  box.addEventListener("pointerdown", function (event) {
    drag = { x: event.clientX, y: event.clientY, vx: view.x, vy: view.y, moved: false, cell: cellAt(event.target) };
    box.setPointerCapture && box.setPointerCapture(event.pointerId);
  });
  box.addEventListener("pointermove", function (event) {
    if (!drag) return;
    var dx = event.clientX - drag.x, dy = event.clientY - drag.y;
    if (Math.abs(dx) + Math.abs(dy) > 4) drag.moved = true;
    if (!drag.moved) return;
    var rect = box.getBoundingClientRect();
    view.x = drag.vx - dx / rect.width / view.z;
    view.y = drag.vy - dy / rect.height / view.z;
    apply();
  });
  box.addEventListener("pointerup", function () {
    var pressed = drag;
    drag = null;
    if (pressed && !pressed.moved) show(pressed.cell);   // the cell pressed on: a captured pointer's up comes from the box
  });

  // A list of [index, value, page] entries, each labelled by `label`, linked where it has a page.
  function linkedList(entries, label) {
    var list = document.createElement("ul");
    entries.forEach(function (entry) {
      var li = document.createElement("li");
      if (entry[2]) { var a = text("a", label(entry)); a.href = entry[2]; li.appendChild(a); }
      else li.textContent = label(entry);
      list.appendChild(li);
    });
    return list;
  }

  function show(found) {
    if (!found) { detail.hidden = true; return; }
    var cell = found.cell;
    detail.textContent = "";
    detail.appendChild(text("h2", "Cell of " + cell[2] + " activations"));
    if (cell[3]) {
      var img = document.createElement("img");
      img.src = cell[3];
      img.alt = "icon";
      img.className = "atlas-big";
      detail.appendChild(img);
    }
    if (data.classes && cell[4].length) {
      detail.appendChild(text("h3", "Classes it pushes toward"));
      var classes = document.createElement("ol");
      cell[4].slice(0, 5).forEach(function (pair) { classes.appendChild(text("li", name(pair[0]) + " " + pair[1].toFixed(3))); });
      detail.appendChild(classes);
    }
    if (cell[7] && cell[7].length) {
      detail.appendChild(text("h3", "Dictionary features its activations use most"));
      detail.appendChild(linkedList(cell[7], function (e) { return "feature " + e[0] + " · mean code " + e[1].toFixed(3); }));
    }
    detail.appendChild(text("h3", "Strongest channels of its average"));
    detail.appendChild(linkedList(cell[5], function (e) { return "[" + e[0] + "] " + e[1].toFixed(3); }));
    if (cell[6].length) {
      detail.appendChild(text("h3", "Photos whose activations fell here"));
      var photos = document.createElement("div");
      photos.className = "atlas-photos";
      cell[6].forEach(function (photo) {
        var fig = document.createElement("figure");
        var img = document.createElement("img");
        img.src = photo[1];
        img.alt = photo[0];
        img.width = img.height = 64;
        fig.appendChild(img);
        fig.appendChild(text("figcaption", photo[0]));
        photos.appendChild(fig);
      });
      detail.appendChild(photos);
    }
    detail.hidden = false;
  }

  box.addEventListener("wheel", function (event) {
    event.preventDefault();
    var rect = box.getBoundingClientRect();
    var fx = (event.clientX - rect.left) / rect.width, fy = (event.clientY - rect.top) / rect.height;
    var px = view.x + (fx - 0.5) / view.z, py = view.y + (fy - 0.5) / view.z;   // the point under the pointer
    view.z *= event.deltaY < 0 ? 1.25 : 0.8;
    view.z = Math.max(1, view.z);
    view.x = px - (fx - 0.5) / view.z;
    view.y = py - (fy - 0.5) / view.z;
    apply();
  }, { passive: false });

  tools.addEventListener("click", function (event) {
    var how = event.target.getAttribute && event.target.getAttribute("data-zoom");
    if (how === "in") view.z *= 2;
    if (how === "out") view.z /= 2;
    if (how === "reset") { view.z = 1; view.x = view.y = 0.5; }
    if (how) apply();
  });

  if (classBox) {
    var names = document.getElementById("atlas-classes");
    Object.keys(data.names).forEach(function (c) {
      var option = document.createElement("option");
      option.value = data.names[c] + " #" + c;
      names.appendChild(option);
    });
    classBox.addEventListener("input", function () {
      var match = /#(\d+)\s*$/.exec(classBox.value);
      view.c = match ? +match[1] : null;
      apply();
    });
  }

  if (labelBy) {
    labelBy.addEventListener("change", function () {
      view.l = labelBy.value;
      Object.keys(built).forEach(function (index) { relabel(+index); });
      apply();
    });
  }

  var copy = document.getElementById("atlas-copy");
  var link = document.getElementById("atlas-link");
  copy.addEventListener("click", function () {
    link.value = location.href;
    link.hidden = false;
    link.select();
    if (navigator.clipboard) navigator.clipboard.writeText(location.href).then(function () { copy.textContent = "Link copied"; },
      function () { copy.textContent = "Select the link and copy it"; });
  });

  // A shared link opens the view it was copied from.
  location.hash.slice(1).split("&").forEach(function (part) {
    var pair = part.split("=");
    if (pair[0] === "z" || pair[0] === "x" || pair[0] === "y") view[pair[0]] = parseFloat(pair[1]) || view[pair[0]];
    if (pair[0] === "l" && pair[1] === "feature" && data.features) {
      view.l = "feature";
      if (labelBy) labelBy.value = "feature";
    }
    if (pair[0] === "c" && /^\d+$/.test(pair[1])) {
      view.c = +pair[1];
      if (classBox) classBox.value = name(view.c) + " #" + view.c;
    }
  });
  build(0);
  apply();
})();
