/* The offline method explorer (book/explorer.md): no server, no kernel, no library.

   The page includes this file in a raw HTML block (so that an edit here reaches the next build
   without executing the page again); its code cell writes a div of class xai-explorer whose
   data-source attribute names a JSON script element (type application/json) holding
     config:    the header of benchmarks/results/explorer-v1/records.jsonl (images, variants,
                targets, layers, settings)
     records:   its records, one per cell of the grid: image, base_method, family, layer, kind
                (the target's role), map {size, min, max, data (8-bit values, base64)}, signed,
                target_label, target_probability, fractions, deletion {auc, curve},
                insertion {auc, curve}, forward_passes, backward_passes, seconds,
                explain_cpu_seconds
     photos:    {image id: a data: URI}
     colormaps: {unsigned: [256 "#rrggbb"], signed: [256 "#rrggbb"]}
     clip:      percentile of |map| that ends each color scale
   and this script draws the controls, the map over the photo (viridis from zero for unsigned
   maps, a diverging map centered on zero for signed ones, with a color bar), the deletion and
   insertion curves and the cost. Elements carry stable ids (explorer-*) and the container
   data-* attributes name what is shown, for the browser test. */
(function () {
  "use strict";

  const SVG = "http://www.w3.org/2000/svg";

  /* The explorer's look, added to the page once. */
  const STYLE = `
    .xai-explorer { font-size: 0.9rem; margin: 1rem 0; }
    .xai-explorer .explorer-controls { display: flex; flex-wrap: wrap; gap: 0.4rem 1rem; margin-bottom: 0.8rem; }
    .xai-explorer .explorer-controls select { max-width: 20rem; }
    .xai-explorer .explorer-controls select:disabled { opacity: 0.45; }
    .xai-explorer .explorer-body { display: flex; flex-wrap: wrap; gap: 0.8rem; align-items: flex-start; }
    .xai-explorer .explorer-view { position: relative; width: 256px; height: 256px; flex: none; }
    .xai-explorer .explorer-view img,
    .xai-explorer .explorer-view canvas { position: absolute; left: 0; top: 0; width: 256px; height: 256px; }
    .xai-explorer .explorer-colorbar { display: flex; flex-direction: column; align-items: center; width: 3.6rem;
      flex: none; font-size: 0.75rem; }
    .xai-explorer .explorer-colorbar canvas { width: 14px; height: 220px; margin: 2px 0; border: 1px solid #888;
      image-rendering: pixelated; }
    .xai-explorer .explorer-side { flex: 1; min-width: 270px; max-width: 360px; }
    .xai-explorer svg { width: 100%; height: auto; font-size: 10px; }
    .xai-explorer .explorer-cost { margin-top: 0.4rem; font-size: 0.85rem; }
    .xai-explorer .explorer-cost th { font-weight: normal; padding: 0 1rem 0 0; text-align: left; }
    .xai-explorer .explorer-cost td { font-variant-numeric: tabular-nums; text-align: right; padding: 0; }
    .xai-explorer .explorer-message { color: #a00; min-height: 1em; }
  `;

  function element(tag, attributes, parent, text) {
    const node = document.createElement(tag);
    Object.entries(attributes || {}).forEach(([k, v]) => node.setAttribute(k, v));
    if (text !== undefined) node.textContent = text;
    if (parent) parent.appendChild(node);
    return node;
  }

  function svgElement(tag, attributes, parent, text) {
    const node = document.createElementNS(SVG, tag);
    Object.entries(attributes || {}).forEach(([k, v]) => node.setAttribute(k, v));
    if (text !== undefined) node.textContent = text;
    if (parent) parent.appendChild(node);
    return node;
  }

  /* The stored 8-bit map back to numbers: min + q (max - min) / 255. */
  function decode(map) {
    const bytes = atob(map.data);
    const values = new Float64Array(bytes.length);
    const step = (map.max - map.min) / 255;
    for (let i = 0; i < bytes.length; i++) values[i] = map.min + bytes.charCodeAt(i) * step;
    return values;
  }

  /* The q-th percentile with linear interpolation between order statistics (numpy's default). */
  function percentile(values, q) {
    const sorted = Array.from(values, Math.abs).sort((a, b) => a - b);
    const position = (q / 100) * (sorted.length - 1);
    const low = Math.floor(position);
    const high = Math.min(low + 1, sorted.length - 1);
    return sorted[low] + (sorted[high] - sorted[low]) * (position - low);
  }

  /* Color index 0..255 of a value: unsigned maps on [0, limit], signed maps on [-limit, limit]. */
  function colorIndex(value, limit, signed) {
    const t = signed ? (value + limit) / (2 * limit) : value / limit;
    return Math.round(Math.min(Math.max(t, 0), 1) * 255);
  }

  function rgb(hex) {
    return [1, 3, 5].map((i) => parseInt(hex.slice(i, i + 2), 16));
  }

  function format(value, digits) {
    if (value === 0) return "0";
    const magnitude = Math.abs(value);
    return magnitude >= 1e-3 && magnitude < 1e4 ? value.toPrecision(digits) : value.toExponential(digits - 1);
  }

  /* What the controls offer, read from the result: images, methods (with their family and
     layers, the last feature map first), layers, targets. */
  function contents(raw) {
    const intermediate = raw.config.layers.intermediate;
    const images = raw.config.images.map((im) => ({
      id: im.image, group: `${im.dataset} (${im.model})`, photo: raw.photos[im.image],
      title: `${im.image}: ${im.file.split("/").pop().replace(/\.[^.]+$/, "")}`}));
    const methods = new Map();
    const layers = new Set();
    raw.records.forEach((r) => {
      const m = methods.get(r.base_method) || {name: r.base_method, family: r.family, layers: []};
      if (r.layer && !m.layers.includes(r.layer)) m.layers.push(r.layer);
      if (r.layer) layers.add(r.layer);
      methods.set(r.base_method, m);
    });
    methods.forEach((m) => m.layers.sort((a, b) => (a === intermediate) - (b === intermediate)));
    const labels = {};
    Array.from(layers).sort((a, b) => (a === intermediate) - (b === intermediate)).forEach((name) => {
      labels[name] = name === intermediate ? `${name} (intermediate)` : `${name} (last feature map)`;
    });
    const roles = {predicted: "predicted class", runner_up: "runner-up"};
    return {images: images, layers: labels, cells: raw.records, clip: raw.clip, colormaps: raw.colormaps,
            curves: raw.config.curves,
            methods: Array.from(methods.values()).sort((a, b) => a.name.localeCompare(b.name)),
            roles: Object.fromEntries(raw.config.targets.map((t) => [t, roles[t] || t]))};
  }

  function Explorer(root, raw) {
    this.root = root;
    this.data = contents(raw);
    this.cells = new Map(this.data.cells.map((c) => [this.key(c.image, c.base_method, c.layer || "", c.kind), c]));
    this.luts = {unsigned: this.data.colormaps.unsigned.map(rgb), signed: this.data.colormaps.signed.map(rgb)};
    this.build();
    this.update();
  }

  Explorer.prototype.key = function (image, method, layer, role) {
    return [image, method, layer, role].join("|");
  };

  Explorer.prototype.build = function () {
    const d = this.data;
    const controls = element("div", {class: "explorer-controls"}, this.root);
    const select = (id, label) => {
      const wrap = element("label", {for: id}, controls, label + " ");
      return element("select", {id: id}, wrap);
    };
    this.image = select("explorer-image", "Image");
    const groups = {};
    d.images.forEach((im) => {
      groups[im.group] = groups[im.group] || element("optgroup", {label: im.group}, this.image);
      element("option", {value: im.id}, groups[im.group], im.title);
    });
    this.method = select("explorer-method", "Method");
    const families = {};
    d.methods.forEach((m) => {
      families[m.family] = families[m.family] || element("optgroup", {label: m.family}, this.method);
      element("option", {value: m.name}, families[m.family], m.name);
    });
    this.layer = select("explorer-layer", "Layer");
    Object.entries(d.layers).forEach(([name, label]) => element("option", {value: name}, this.layer, label));
    this.target = select("explorer-target", "Target");
    Object.keys(d.roles).forEach((role) => element("option", {value: role}, this.target, d.roles[role]));
    const opacity = element("label", {for: "explorer-opacity"}, controls, "Map opacity ");
    this.opacity = element("input", {id: "explorer-opacity", type: "range", min: "0", max: "100", value: "70"}, opacity);
    [this.image, this.method, this.layer, this.target].forEach((s) => s.addEventListener("change", () => this.update()));
    this.opacity.addEventListener("input", () => { this.canvas.style.opacity = this.opacity.value / 100; });

    const body = element("div", {class: "explorer-body"}, this.root);
    const view = element("div", {class: "explorer-view"}, body);
    // the page may write the first photo as a static img (seen without JavaScript): reuse it
    this.photo = this.root.querySelector("img.explorer-photo") || element("img", {class: "explorer-photo"});
    this.photo.id = "explorer-photo";
    this.photo.alt = "the selected image";
    view.appendChild(this.photo);
    this.canvas = element("canvas", {id: "explorer-map"}, view);
    this.canvas.style.opacity = 0.7;
    const bar = element("div", {class: "explorer-colorbar"}, body);
    this.scaleHigh = element("span", {id: "explorer-scale-high"}, bar);
    this.bar = element("canvas", {id: "explorer-colorbar", width: "1", height: "256"}, bar);
    this.scaleLow = element("span", {id: "explorer-scale-low"}, bar);

    const side = element("div", {class: "explorer-side"}, body);
    this.curves = svgElement("svg", {id: "explorer-curves", viewBox: "0 0 340 216", role: "img"}, side);
    this.drawAxes();
    const table = element("table", {id: "explorer-cost", class: "explorer-cost"}, side);
    this.numbers = {};
    [["target-class", "target class"], ["probability", "its probability"],
     ["deletion-auc", "deletion AUC (lower is better)"], ["insertion-auc", "insertion AUC (higher is better)"],
     ["forward", "forward passes"], ["backward", "backward passes"], ["seconds", "seconds (wall)"],
     ["cpu-seconds", "CPU seconds"]].forEach(([id, label]) => {
      const row = element("tr", {}, table);
      element("th", {}, row, label);
      this.numbers[id] = element("td", {id: "explorer-" + id}, row);
    });
    this.message = element("p", {id: "explorer-message", class: "explorer-message"}, side);
  };

  /* Frame, ticks and labels of the curve plot: x the fraction of pixels, y the probability. */
  Explorer.prototype.drawAxes = function () {
    const g = svgElement("g", {class: "explorer-axes"}, this.curves);
    this.plot = {left: 40, top: 26, width: 285, height: 150};
    const p = this.plot;
    const c = this.data.curves;
    this.curves.setAttribute("data-plot", JSON.stringify(p));  // where probability 0..1 and fraction 0..1 lie
    svgElement("rect", {x: p.left, y: p.top, width: p.width, height: p.height, fill: "none", stroke: "#888"}, g);
    [0, 0.5, 1].forEach((t) => {
      svgElement("text", {x: p.left + t * p.width, y: p.top + p.height + 14, "text-anchor": "middle"}, g, String(t));
      svgElement("text", {x: p.left - 6, y: p.top + (1 - t) * p.height + 4, "text-anchor": "end"}, g, String(t));
    });
    svgElement("text", {x: p.left + p.width / 2, y: p.top + p.height + 32, "text-anchor": "middle"}, g,
               "fraction of pixels deleted or inserted");
    svgElement("text", {x: 12, y: p.top + p.height / 2, "text-anchor": "middle",
                        transform: `rotate(-90 12 ${p.top + p.height / 2})`}, g, "probability");
    this.lines = {};
    [["deletion", "#d62728"], ["insertion", "#1f77b4"]].forEach(([name, color], i) => {
      this.lines[name] = svgElement("polyline", {id: `explorer-${name}-line`, fill: "none", stroke: color,
                                                 "stroke-width": "2"}, this.curves);
      const x = p.left + 110 * i;  // the legend above the plot
      svgElement("line", {x1: x, x2: x + 16, y1: 10, y2: 10, stroke: color, "stroke-width": "2"}, g);
      svgElement("text", {x: x + 20, y: 14}, g, name === "deletion" ? `deletion (to ${c.deletion_baseline})` : `insertion (from ${c.insertion_start})`);
    });
  };

  /* The roles (targets) of the chosen image, labeled with their class; layers the method has. */
  Explorer.prototype.refreshOptions = function () {
    const image = this.image.value;
    const spec = this.data.methods.find((m) => m.name === this.method.value);
    this.layer.disabled = spec.layers.length === 0;
    Array.from(this.layer.options).forEach((o) => { o.disabled = !spec.layers.includes(o.value); });
    if (spec.layers.length && !spec.layers.includes(this.layer.value)) this.layer.value = spec.layers[0];
    Array.from(this.target.options).forEach((o) => {
      const any = this.data.cells.find((c) => c.image === image && c.kind === o.value);
      o.textContent = any ? `${this.data.roles[o.value]}: ${any.target_label} (p = ${any.target_probability.toFixed(3)})`
                          : this.data.roles[o.value];
    });
  };

  Explorer.prototype.update = function () {
    this.refreshOptions();
    const spec = this.data.methods.find((m) => m.name === this.method.value);
    const layer = spec.layers.length ? this.layer.value : "";
    const state = {image: this.image.value, method: this.method.value, layer: layer, target: this.target.value};
    Object.entries(state).forEach(([k, v]) => { this.root.dataset[k] = v; });
    this.photo.src = this.data.images.find((im) => im.id === state.image).photo;
    const cell = this.cells.get(this.key(state.image, state.method, layer, state.target));
    this.message.textContent = cell ? "" : "This combination is not in the precomputed result.";
    this.root.dataset.shown = cell ? "yes" : "no";
    if (cell) {
      this.drawMap(cell);
      this.drawCurves(cell);
      this.showNumbers(cell);
    }
  };

  Explorer.prototype.drawMap = function (cell) {
    const [h, w] = cell.map.size;
    const values = decode(cell.map);
    let limit = percentile(values, this.data.clip);
    if (!(limit > 0)) limit = 1;  // an all-zero map: every pixel at the bottom (or middle) of its scale
    const lut = cell.signed ? this.luts.signed : this.luts.unsigned;
    this.canvas.width = w;
    this.canvas.height = h;
    const ctx = this.canvas.getContext("2d");
    const image = ctx.createImageData(w, h);
    values.forEach((v, i) => {
      const [r, g, b] = lut[colorIndex(v, limit, cell.signed)];
      image.data.set([r, g, b, 255], 4 * i);
    });
    ctx.putImageData(image, 0, 0);
    const barCtx = this.bar.getContext("2d");
    lut.forEach(([r, g, b], i) => {
      barCtx.fillStyle = `rgb(${r},${g},${b})`;
      barCtx.fillRect(0, 255 - i, 1, 1);
    });
    this.scaleHigh.textContent = format(limit, 3);
    this.scaleLow.textContent = cell.signed ? format(-limit, 3) : "0";
    this.root.dataset.signed = cell.signed ? "yes" : "no";
    this.root.dataset.limit = String(limit);
  };

  Explorer.prototype.drawCurves = function (cell) {
    const p = this.plot;
    ["deletion", "insertion"].forEach((name) => {
      const points = cell[name].curve.map((v, i) => {
        const x = p.left + cell.fractions[i] * p.width;
        const y = p.top + (1 - v) * p.height;
        return `${x.toFixed(2)},${y.toFixed(2)}`;
      });
      this.lines[name].setAttribute("points", points.join(" "));
    });
  };

  Explorer.prototype.showNumbers = function (cell) {
    const n = this.numbers;
    n["target-class"].textContent = cell.target_label;
    n["probability"].textContent = cell.target_probability.toFixed(3);
    n["deletion-auc"].textContent = cell.deletion.auc.toFixed(3);
    n["insertion-auc"].textContent = cell.insertion.auc.toFixed(3);
    n["forward"].textContent = String(cell.forward_passes);
    n["backward"].textContent = String(cell.backward_passes);
    n["seconds"].textContent = format(cell.seconds, 3);
    n["cpu-seconds"].textContent = format(cell.explain_cpu_seconds, 3);
  };

  function start() {
    const roots = document.querySelectorAll(".xai-explorer");
    if (roots.length && !document.getElementById("xai-explorer-style")) {
      element("style", {id: "xai-explorer-style"}, document.head, STYLE);
    }
    roots.forEach((root) => {
      if (root.dataset.ready) return;
      const source = document.getElementById(root.dataset.source);
      root.dataset.ready = "yes";
      root.explorer = new Explorer(root, JSON.parse(source.textContent));
    });
  }

  if (document.readyState === "loading") {
    document.addEventListener("DOMContentLoaded", start);
  } else {
    start();
  }
})();
