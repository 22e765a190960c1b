// colnn explain's page: draws the walk's steps from the embedded JSON, traces a number
// through them by following each step's links, outlines a window when one of its rows is
// clicked, and reveals the walk one step at a time. No network, no libraries.
(function () {
  "use strict";
  const data = JSON.parse(document.getElementById("walk-data").textContent);
  const steps = data.steps;
  const GRADIENT_BANDS = new Set(["backward", "parameters"]);
  const byKey = {};
  steps.forEach(function (step, position) { step.position = position; byKey[step.key] = step; });

  // --- the links as a graph: node "key:i" -> [[other node, copy?], ...] ---------
  const parents = new Map();
  const children = new Map();
  function node(key, index) { return key + ":" + index; }
  function push(map, from, to, copy) {
    if (!map.has(from)) { map.set(from, []); }
    map.get(from).push([to, copy]);
  }
  steps.forEach(function (step) {
    step.sources.forEach(function (link) {
      link.index.forEach(function (list, cell) {
        list.forEach(function (source) {
          if (source < 0) { return; }
          push(parents, node(step.key, cell), node(link.key, source), link.copy);
          push(children, node(link.key, source), node(step.key, cell), link.copy);
        });
      });
    });
  });
  function reach(start, next) {
    const seen = new Set(start);
    const queue = Array.from(start);
    while (queue.length) {
      next(queue.pop()).forEach(function (other) {
        if (!seen.has(other)) { seen.add(other); queue.push(other); }
      });
    }
    return seen;
  }
  function edges(map, name, copiesOnly) {
    return (map.get(name) || []).filter(function (edge) { return !copiesOnly || edge[1]; })
      .map(function (edge) { return edge[0]; });
  }
  // The same value wherever it was copied, everything it was made from, everything made from it.
  function trace(start) {
    const same = reach([start], function (name) {
      return edges(parents, name, true).concat(edges(children, name, true));
    });
    const before = reach(same, function (name) { return edges(parents, name, false); });
    const after = reach(same, function (name) { return edges(children, name, false); });
    return { same: same, all: new Set(Array.from(before).concat(Array.from(after))) };
  }

  // --- drawing ---------------------------------------------------------------
  const cellsOf = new Map();  // node -> td
  function el(tag, attributes, text) {
    const element = document.createElement(tag);
    Object.keys(attributes || {}).forEach(function (name) { element.setAttribute(name, attributes[name]); });
    if (text !== undefined) { element.textContent = text; }
    return element;
  }
  function unravel(index, shape) {
    const position = [];
    for (let axis = shape.length - 1; axis >= 0; axis -= 1) {
      position.unshift(index % shape[axis]);
      index = Math.floor(index / shape[axis]);
    }
    return position;
  }
  function palette(step) { return data.colors[step.palette === "filter" ? "filter" : "channel"]; }
  function kindOf(step) { return step.palette === "filter" ? "filter" : "channel"; }
  function valueCell(step, index) {
    const td = el("td", { "class": "cell", tabindex: "0", "data-step": step.key, "data-i": String(index) },
                  step.text[index]);
    const padded = step.padded && step.padded[index];
    const colors = palette(step);
    td.style.background = padded ? data.colors.padding : colors[(step.channel ? step.channel[index] : 0) % colors.length];
    if (padded) { td.classList.add("pad"); }
    if (step.chosen && step.chosen[index]) { td.classList.add("chosen"); }
    if (step.unused && step.unused[index]) { td.classList.add("unused"); }
    // A gradient's zeros are where nothing flows back (the winners' offsets are not a gradient).
    if (step.key.indexOf("grad_") === 0 && step.values[index] === 0 && !padded) { td.classList.add("zero-gradient"); }
    td.title = describe(step, index);
    cellsOf.set(node(step.key, index), td);
    return td;
  }
  function planes(step) {
    const shape = step.shape;
    const ringH = step.ring[0];
    const ringW = step.ring[1];
    const box = el("div", { "class": "planes" });
    for (let outer = 0; outer < shape[0]; outer += 1) {
      const column = el("div", { "class": "plane-group" });
      for (let channel = 0; channel < shape[1]; channel += 1) {
        const prefix = shape[0] > 1 || step.outer !== "image" ? step.outer + " " + (outer + 1) + ", " : "";
        const wrap = el("div");
        wrap.appendChild(el("div", { "class": "plane-caption" }, prefix + kindOf(step) + " " + (channel + 1)));
        const table = el("table", { "class": "cells" });
        for (let y = -ringH; y < shape[2] + ringH; y += 1) {
          const tr = el("tr");
          for (let x = -ringW; x < shape[3] + ringW; x += 1) {
            let td;
            if (y >= 0 && y < shape[2] && x >= 0 && x < shape[3]) {
              td = valueCell(step, ((outer * shape[1] + channel) * shape[2] + y) * shape[3] + x);
            } else {
              td = el("td", { "class": "cell pad", "data-step": step.key }, data.pad_text);
              td.style.background = data.colors.padding;
              td.title = "padding";
            }
            td.setAttribute("data-n", String(outer));
            td.setAttribute("data-c", String(channel));
            td.setAttribute("data-y", String(y));
            td.setAttribute("data-x", String(x));
            tr.appendChild(td);
          }
          table.appendChild(tr);
        }
        wrap.appendChild(table);
        column.appendChild(wrap);
      }
      box.appendChild(column);
    }
    return box;
  }
  function matrix(step) {
    const rows = step.shape[0];
    const columns = step.shape.length > 1 ? step.shape[1] : 1;
    const table = el("table", { "class": "cells" });
    if (step.column_labels) {
      const head = el("tr");
      head.appendChild(el("th"));
      step.column_labels.forEach(function (label) { head.appendChild(el("th", { "class": "col-label" }, label)); });
      table.appendChild(head);
    }
    for (let row = 0; row < rows; row += 1) {
      const tr = el("tr", { "data-row": String(row) });
      const label = step.row_labels ? step.row_labels[row] : "";
      const th = el("th", { "class": "row-label" }, label);
      const windowIndex = step.row_windows ? step.row_windows[row] : null;
      if (windowIndex !== null && windowIndex !== undefined) {
        th.classList.add("window-row");
        th.title = "click: outline window " + (windowIndex + 1) + " on the input";
        th.addEventListener("click", function () { pick(step, row, windowIndex); });
      }
      tr.appendChild(th);
      for (let column = 0; column < columns; column += 1) { tr.appendChild(valueCell(step, row * columns + column)); }
      table.appendChild(tr);
    }
    return table;
  }
  function shapeText(shape) { return "(" + shape.join(", ") + (shape.length === 1 ? ",)" : ")"); }
  function describe(step, index) {
    const where = step.key + "[" + unravel(index, step.shape).join(", ") + "] = " + step.text[index];
    const parts = step.sources.map(function (link) {
      const found = link.index[index].filter(function (source) { return source >= 0; });
      const source = byKey[link.key];
      if (!found.length) { return ""; }
      if (link.copy) { return "a copy of " + link.key + "[" + unravel(found[0], source.shape).join(", ") + "]"; }
      return "made from " + found.length + " cell" + (found.length > 1 ? "s" : "") + " of " + link.key + ": " +
        found.map(function (cell) { return source.text[cell]; }).join(step.key === "grad_input" ? " + " : ", ");
    }).filter(Boolean);
    return where + (parts.length ? ", " + parts.join("; ") : "");
  }

  const main = document.getElementById("walk");
  const sections = [];
  const bandTitles = {};
  // Bands in the figure's order (the filters above the forward walk), steps in the walk's order.
  Object.keys(data.band_titles).forEach(function (band) {
    if (steps.some(function (step) { return step.band === band; })) {
      bandTitles[band] = el("div", { "class": "band-title", "data-band": band }, data.band_titles[band]);
      main.appendChild(bandTitles[band]);
    }
  });
  steps.forEach(function (step) {
    const section = el("section", { "class": "step", "data-key": step.key, "aria-label": step.label || step.title });
    section.appendChild(el("h2", {}, step.label ? step.label + ": " + step.title
                                                 : step.title.charAt(0).toUpperCase() + step.title.slice(1)));
    section.appendChild(el("code", {}, step.code));
    section.appendChild(el("div", { "class": "shape" }, "shape " + shapeText(step.shape)));
    section.appendChild(el("p", { "class": "why" }, step.why));
    section.appendChild(step.shape.length === 4 ? planes(step) : matrix(step));
    // Steps of one band sit together, in the walk's order.
    let anchor = bandTitles[step.band];
    while (anchor.nextSibling && anchor.nextSibling.classList.contains("step")) { anchor = anchor.nextSibling; }
    main.insertBefore(section, anchor.nextSibling);
    sections.push(section);
  });
  // Each window's number on its top left cell of the input.
  const input = byKey.input;
  if (input) {
    data.windows.forEach(function (window, index) {
      document.querySelectorAll('td[data-step="input"][data-n="' + window[0] + '"][data-y="' + window[1] +
                                '"][data-x="' + window[2] + '"]').forEach(function (td) {
        td.appendChild(el("span", { "class": "badge" }, "w" + (index + 1)));
      });
    });
  }

  // --- the header --------------------------------------------------------------
  document.getElementById("headline").textContent = data.headline;
  const notes = document.getElementById("notes");
  data.notes.forEach(function (note) { notes.appendChild(el("li", {}, note)); });
  const legend = document.getElementById("legend");
  function swatch(label, color, extra) {
    const item = el("span", { "class": "legend-item" });
    const box = el("span", { "class": "swatch " + (extra || "") });
    box.style.background = color;
    item.appendChild(box);
    item.appendChild(document.createTextNode(label));
    legend.appendChild(item);
  }
  const legendSteps = steps.filter(function (step) { return step.shape.length === 4; });
  const seen = new Set();
  legendSteps.forEach(function (step) {
    for (let index = 0; index < step.shape[1]; index += 1) {
      const label = kindOf(step) + " " + (index + 1);
      if (!seen.has(label)) { seen.add(label); swatch(label, palette(step)[index % palette(step).length]); }
    }
  });
  if (steps.some(function (step) { return step.ring[0] + step.ring[1] > 0; })) { swatch("padding", data.colors.padding); }
  if (steps.some(function (step) { return step.chosen && step.band === "forward"; })) {
    swatch("the max of its row (dark edge)", data.colors.channel[0], "chosen");
  }
  if (steps.some(function (step) { return GRADIENT_BANDS.has(step.band); })) {
    swatch("pale: zero gradient (nothing flows back)", data.colors.channel[0], "pale");
  }
  if (steps.some(function (step) { return step.unused && step.unused.some(Boolean); })) {
    swatch("crossed: in no window, left out", data.colors.channel[0], "unused-swatch");
  }

  // --- trace a number ------------------------------------------------------------
  const status = document.getElementById("status");
  let marked = [];
  function clearTrace() {
    marked.forEach(function (td) { td.classList.remove("hl", "hl-self", "won", "lost"); });
    marked = [];
  }
  function mark(td, name) { td.classList.add(name); marked.push(td); }
  function highlight(td) {
    clearTrace();
    const start = node(td.getAttribute("data-step"), td.getAttribute("data-i"));
    const found = trace(start);
    found.all.forEach(function (name) { const cell = cellsOf.get(name); if (cell) { mark(cell, "hl"); } });
    mark(td, "hl-self");
    // A max takes one cell of its row: say whether this number won or lost each max it entered.
    found.same.forEach(function (name) {
      const parts = name.split(":");
      const step = byKey[parts[0]];
      if (!step.chosen) { return; }
      edges(children, name, false).forEach(function (child) {
        if (found.same.has(child)) { return; }
        const cell = cellsOf.get(child);
        if (cell && byKey[child.split(":")[0]].band === step.band) { mark(cell, step.chosen[+parts[1]] ? "won" : "lost"); }
      });
    });
    status.textContent = td.title + "  (" + found.all.size + " cells highlighted)";
  }
  cellsOf.forEach(function (td) {
    td.addEventListener("mouseenter", function () { highlight(td); });
    td.addEventListener("focus", function () { highlight(td); });
  });

  // --- outline a window ------------------------------------------------------------
  let outlined = [];
  function pick(step, row, windowIndex) {
    outlined.forEach(function (element) { element.classList.remove("win", "picked"); });
    outlined = [];
    const window = data.windows[windowIndex];
    const tr = document.querySelector('section[data-key="' + step.key + '"] tr[data-row="' + row + '"]');
    if (tr) { tr.classList.add("picked"); outlined.push(tr); }
    document.querySelectorAll('td[data-step="input"][data-n="' + window[0] + '"]').forEach(function (td) {
      const y = +td.getAttribute("data-y");
      const x = +td.getAttribute("data-x");
      if (y >= window[1] && y < window[1] + window[3] && x >= window[2] && x < window[2] + window[4]) {
        td.classList.add("win");
        outlined.push(td);
      }
    });
    status.textContent = "row " + (row + 1) + " of " + step.key + " is window " + (windowIndex + 1) +
      " of image " + (window[0] + 1) + ": input rows " + (window[1] + 1) + " to " + (window[1] + window[3]) +
      ", columns " + (window[2] + 1) + " to " + (window[2] + window[4]) + " (outlined)";
  }

  // --- step through ------------------------------------------------------------------
  let current = 0;
  const showAll = document.getElementById("show-all");
  function show() {
    sections.forEach(function (section, position) {
      section.classList.toggle("hidden", !showAll.checked && position > current);
      section.classList.toggle("current", !showAll.checked && position === current);
    });
    Object.keys(bandTitles).forEach(function (band) {
      const visible = steps.some(function (step) { return step.band === band && (showAll.checked || step.position <= current); });
      bandTitles[band].classList.toggle("hidden", !visible);
      bandTitles[band].style.display = visible ? "" : "none";
    });
    const step = steps[current];
    document.getElementById("position").textContent = showAll.checked ? "all " + steps.length + " steps"
      : (current + 1) + " of " + steps.length + ": " + (step.label || step.title);
    document.getElementById("prev").disabled = showAll.checked || current === 0;
    document.getElementById("next").disabled = showAll.checked || current === steps.length - 1;
  }
  function go(delta) {
    if (showAll.checked) { return; }
    current = Math.max(0, Math.min(steps.length - 1, current + delta));
    show();
  }
  document.getElementById("prev").addEventListener("click", function () { go(-1); });
  document.getElementById("next").addEventListener("click", function () { go(1); });
  showAll.addEventListener("change", show);
  document.addEventListener("keydown", function (event) {
    if (event.key === "ArrowRight") { go(1); event.preventDefault(); }
    if (event.key === "ArrowLeft") { go(-1); event.preventDefault(); }
    if (event.key === "Escape") { clearTrace(); }
  });
  show();
}());
