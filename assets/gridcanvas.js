/* The grid layer's canvas renderer. Leaflet's own canvas renderer, on any restyle, clears the
   union of the changed polygons' bounds and redraws every polygon inside it, each with its own
   fill() and stroke(): changed grids lie all over the city, so every update redrew the whole
   map (40,000 draw calls at 20,000 grids). This one keeps the canvas' pixels in a buffer of its
   own:
   - on a view change (pan, zoom, resize) it finds which pixels each polygon owns (row spans,
     by pixel centre, in JavaScript) and strokes all plain outlines once into a mask;
   - a restyle then writes the changed polygons' pixels (their fill under the outline at the
     mask's coverage, from a table of 256 colours per fill) and puts their boxes on the canvas:
     no path is filled or stroked.
   The layers stay ordinary L.Polygon: hit-testing, tooltips and hover are Leaflet's. A polygon
   whose outline differs from the others' (the hovered one) has its outline stroked over the
   put pixels, so it lies over its neighbours; the next put of its box takes it away. */
(function () {
  "use strict";

  let GridCanvas = null;

  // One Path2D per polygon, rebuilt only when Leaflet re-clips it (a new _parts array: after a
  // zoom or a pan), so a restyle builds no geometry.
  function pathOf(layer) {
    const cached = layer._gridPath;
    if (cached && cached.parts === layer._parts) { return cached.path; }
    const path = new Path2D();
    for (const ring of layer._parts) {
      for (let i = 0; i < ring.length; i++) {
        if (i) { path.lineTo(ring[i].x, ring[i].y); } else { path.moveTo(ring[i].x, ring[i].y); }
      }
      path.closePath();
    }
    layer._gridPath = { parts: layer._parts, path: path };
    return path;
  }

  const OUTLINE = ["stroke", "color", "weight", "opacity", "lineCap", "lineJoin", "_dashArray"];

  // field by field: no string built per polygon and redraw
  function sameOutline(a, b) {
    for (const k of OUTLINE) { if (a[k] !== b[k]) { return false; } }
    return true;
  }

  function outlineOf(o) {
    const copy = {};
    for (const k of OUTLINE) { copy[k] = o[k]; }
    return copy;
  }

  const LITTLE_ENDIAN = new Uint8Array(new Uint32Array([1]).buffer)[0] === 1;

  // One pixel of an ImageData (not premultiplied) as a Uint32 over its bytes.
  function pack(r, g, b, a) {
    return LITTLE_ENDIAN ? ((a << 24) | (b << 16) | (g << 8) | r) >>> 0
                         : ((r << 24) | (g << 16) | (b << 8) | a) >>> 0;
  }

  // [r, g, b, alpha 0-1] of a CSS colour, as the canvas itself reads it
  let probe = null;
  function rgba(css) {
    probe = probe || document.createElement("canvas").getContext("2d");
    probe.fillStyle = "#000";
    probe.fillStyle = css;
    const s = probe.fillStyle;
    if (s[0] === "#") {
      return [parseInt(s.slice(1, 3), 16), parseInt(s.slice(3, 5), 16), parseInt(s.slice(5, 7), 16), 1];
    }
    const n = s.slice(s.indexOf("(") + 1, -1).split(",").map(Number);
    return [n[0], n[1], n[2], n.length > 3 ? n[3] : 1];
  }

  // A fill as Leaflet draws it (its colour at the fill opacity over nothing) under the outline
  // at each coverage 0-255: source-over, as the canvas composites a stroke over a fill.
  function shadeTable(fill, fillAlpha, line, lineAlpha) {
    const table = new Uint32Array(256);
    for (let c = 0; c < 256; c++) {
      const top = lineAlpha * c / 255;
      const under = fillAlpha * (1 - top);
      const a = top + under;
      if (a <= 0) { continue; }
      const ch = function (i) { return Math.round((line[i] * top + fill[i] * under) / a); };
      table[c] = pack(ch(0), ch(1), ch(2), Math.round(a * 255));
    }
    return table;
  }

  // Scratch space of spansOf: one polygon's edges (x0, y0, x1, y1), one row's crossings.
  let edges = new Float64Array(64);
  let cross = new Float64Array(16);

  // A growing list of ints (the spans of all polygons).
  function IntList() { this.a = new Int32Array(1 << 16); this.n = 0; }
  IntList.prototype.push2 = function (u, v) {
    if (this.n + 2 > this.a.length) {
      const a = new Int32Array(this.a.length * 2);
      a.set(this.a);
      this.a = a;
    }
    this.a[this.n++] = u;
    this.a[this.n++] = v;
  };

  // The pixels whose centres lie inside the polygon (even-odd over its rings, as Leaflet fills)
  // as [start, end) offsets into a w x h buffer, row by row, appended to out. A centre on an edge
  // two grids share goes to exactly one of them (half-open on both axes).
  function spansOf(rings, ox, oy, m, w, h, out) {
    let n = 0, top = Infinity, bottom = -Infinity;
    for (const ring of rings) {
      for (let i = 0, j = ring.length - 1; i < ring.length; j = i++) {
        const y0 = (ring[j].y - oy) * m, y1 = (ring[i].y - oy) * m;
        if (y0 === y1) { continue; }  // level: crosses no row's centre line
        if (n + 4 > edges.length) {
          const grown = new Float64Array(edges.length * 2);
          grown.set(edges);
          edges = grown;
        }
        edges[n++] = (ring[j].x - ox) * m; edges[n++] = y0;
        edges[n++] = (ring[i].x - ox) * m; edges[n++] = y1;
        top = Math.min(top, y0, y1);
        bottom = Math.max(bottom, y0, y1);
      }
    }
    if (n / 4 > cross.length) { cross = new Float64Array(n); }
    const last = Math.min(h, Math.ceil(bottom - 0.5));
    for (let y = Math.max(0, Math.ceil(top - 0.5)); y < last; y++) {
      const yc = y + 0.5;
      let k = 0;
      for (let e = 0; e < n; e += 4) {
        if ((edges[e + 1] <= yc) === (edges[e + 3] <= yc)) { continue; }
        const x0 = edges[e], y0 = edges[e + 1];
        const x = x0 + (yc - y0) * (edges[e + 2] - x0) / (edges[e + 3] - y0);
        let i = k++;
        for (; i > 0 && cross[i - 1] > x; i--) { cross[i] = cross[i - 1]; }  // a handful: insertion
        cross[i] = x;
      }
      for (let c = 0; c + 1 < k; c += 2) {
        const a = Math.max(0, Math.ceil(cross[c] - 0.5));
        const b = Math.min(w, Math.ceil(cross[c + 1] - 0.5));
        if (b > a) { out.push2(y * w + a, y * w + b); }
      }
    }
  }

  function define() {
    return L.Canvas.extend({
      // -- the mouse ---------------------------------------------------------------------
      // Every overlay pane above the grids (sites, boundaries, trails, gauges...) has a canvas
      // of its own covering the map, and Leaflet passes a canvas' mouse events to no canvas
      // below it: a real mouse never reached the grids. A move over none of the shapes of the
      // canvas it hit is handed to the grids here; a move over one of them ends the grid hover.
      onAdd: function () {
        L.Canvas.prototype.onAdd.call(this);
        this._owners = new WeakMap();
        this._forward = this._forwardMove.bind(this);
        this._leave = this._handleMouseOut.bind(this);
        this._map.getContainer().addEventListener("mousemove", this._forward);
        this._map.getContainer().addEventListener("mouseleave", this._leave);
      },
      onRemove: function () {
        this._map.getContainer().removeEventListener("mousemove", this._forward);
        this._map.getContainer().removeEventListener("mouseleave", this._leave);
        L.Canvas.prototype.onRemove.call(this);
      },
      _ownerOf: function (canvas) {
        if (!this._owners.has(canvas)) {
          let owner = null;
          this._map.eachLayer(function (layer) {
            if (layer instanceof L.Canvas && layer._container === canvas) { owner = layer; }
          });
          this._owners.set(canvas, owner);
        }
        return this._owners.get(canvas);
      },
      _forwardMove: function (e) {
        if (e.target === this._container || e.target.tagName !== "CANVAS") { return; }
        const owner = this._ownerOf(e.target);
        if (!owner) { return; }  // not a vector pane's canvas
        if (owner._hoveredLayer) { this._handleMouseOut(e); } else { this._onMouseMove(e); }
      },

      // -- what a redraw must touch ------------------------------------------------------
      // A restyle (setStyle, hover, bringToFront) names its layer here; the pixels are rebuilt
      // when a polygon moves in pixels or joins or leaves the canvas.
      _extendRedrawBounds: function (layer) {
        (this._dirty = this._dirty || new Set()).add(layer);
      },
      _initPath: function (layer) { this._stale = true; L.Canvas.prototype._initPath.call(this, layer); },
      _removePath: function (layer) { this._stale = true; L.Canvas.prototype._removePath.call(this, layer); },
      _updatePath: function (layer) { this._stale = true; L.Canvas.prototype._updatePath.call(this, layer); },
      _onZoomEnd: function () { this._stale = true; L.Canvas.prototype._onZoomEnd.call(this); },
      _reset: function () { this._stale = true; L.Canvas.prototype._reset.call(this); },
      _update: function () { this._stale = true; L.Canvas.prototype._update.call(this); },
      _updatePaths: function () { this._stale = true; L.Canvas.prototype._updatePaths.call(this); },

      // -- redraw ----------------------------------------------------------------------
      _redraw: function () {
        this._redrawRequest = null;
        this._redrawBounds = null;
        const dirty = this._dirty;
        this._dirty = null;
        if (!this._map || !this._container.width || !this._container.height) { return; }
        if (this._stale || !this._pix || this._pixW !== this._container.width ||
            this._pixH !== this._container.height) {
          this._rebuild();
          this._ctx.putImageData(this._img, 0, 0);
          this._drawAlone(null);
          return;
        }
        const rects = [];
        for (const layer of dirty || []) {
          if (!layer._map) { continue; }
          this._noteAlone(layer);
          this._fillSpans(layer);
          rects.push(this._boxOf(layer));
        }
        this._put(rects);
        this._drawAlone(rects);
      },

      // Draw now what is due at the next frame: a caller already in an animation frame
      // (assets/push.js) saves a frame's wait.
      flush: function () {
        if (!this._redrawRequest) { return; }
        L.Util.cancelAnimFrame(this._redrawRequest);
        this._redraw();
      },

      // The canvas' rectangle (device pixels) a layer's drawing may touch, joined with the one
      // it last had (a hover outline is wider than the plain one).
      _boxOf: function (layer) {
        const b = layer._pxBounds, min = this._bounds.min, m = this._scale;
        let box = layer._gridBox ? layer._gridBox.slice() : null;
        if (b) {
          const pad = (layer.options.weight || 0) + 2;
          const now = [Math.max(0, Math.floor((b.min.x - pad - min.x) * m)),
                       Math.max(0, Math.floor((b.min.y - pad - min.y) * m)),
                       Math.min(this._pixW, Math.ceil((b.max.x + pad - min.x) * m)),
                       Math.min(this._pixH, Math.ceil((b.max.y + pad - min.y) * m))];
          box = box ? [Math.min(box[0], now[0]), Math.min(box[1], now[1]),
                       Math.max(box[2], now[2]), Math.max(box[3], now[3])] : now;
          layer._gridBox = now;
        }
        return box || [0, 0, 0, 0];
      },

      // The changed rectangles from the pixel buffer to the canvas: each on its own while they
      // cover less than half of the rectangle around them all, else that one rectangle.
      _put: function (rects) {
        let area = 0, x0 = Infinity, y0 = Infinity, x1 = 0, y1 = 0;
        for (const r of rects) {
          area += (r[2] - r[0]) * (r[3] - r[1]);
          x0 = Math.min(x0, r[0]); y0 = Math.min(y0, r[1]);
          x1 = Math.max(x1, r[2]); y1 = Math.max(y1, r[3]);
        }
        if (x1 <= x0 || y1 <= y0) { return; }
        if (area > 0.5 * (x1 - x0) * (y1 - y0)) { rects = [[x0, y0, x1, y1]]; }
        for (const r of rects) {
          if (r[2] > r[0] && r[3] > r[1]) {
            this._ctx.putImageData(this._img, 0, 0, r[0], r[1], r[2] - r[0], r[3] - r[1]);
          }
        }
      },

      // -- the pixel buffer ----------------------------------------------------------------
      // On each view change: which pixels each polygon owns (row spans, by pixel centre), and
      // how much of each pixel the plain outlines cover (stroked once into a mask). A pixel's
      // colour is then a look-up: the owner's fill under the outline at that coverage. A
      // restyle rewrites the changed polygons' spans and puts their boxes; no path is filled
      // or stroked.
      _rebuild: function () {
        const w = this._container.width, h = this._container.height;
        const m = L.Browser.retina ? 2 : 1;
        if (!this._pix || this._pixW !== w || this._pixH !== h) {
          this._img = this._ctx.createImageData(w, h);
          this._pix = new Uint32Array(this._img.data.buffer);
        }
        this._pixW = w; this._pixH = h; this._scale = m;
        const layers = [];
        for (let o = this._drawFirst; o; o = o.next) { layers.push(o.layer); }
        this._plain = this._plainOutline(layers);
        this._mask = this._outlineMask(layers, w, h, m);
        this._shades = new Map();
        const out = new IntList();
        const ox = this._bounds.min.x, oy = this._bounds.min.y;
        for (const layer of layers) {
          layer._gridSpans = layer._gridBox = null;  // the whole canvas is put after this
          if (!(layer instanceof L.Polygon) || !layer._parts || !layer._parts.length) { continue; }
          const first = out.n;
          spansOf(layer._parts, ox, oy, m, w, h, out);
          layer._gridSpans = [first, out.n];
        }
        this._spans = out.a;
        const bare = this._shadesOf(null), mask = this._mask, pix = this._pix;
        for (let p = 0; p < pix.length; p++) { pix[p] = bare[mask[p]]; }  // outline over nothing
        this._alone = new Set();
        for (const layer of layers) { this._noteAlone(layer); this._fillSpans(layer); }
        this._stale = false;
      },

      // The outline most polygons have (a majority vote): the one the mask is stroked with.
      // A copy: the layer's options change when it is hovered.
      _plainOutline: function (layers) {
        let plain = null, votes = 0;
        for (const layer of layers) {
          if (!votes) { plain = layer.options; }
          votes += votes && !sameOutline(layer.options, plain) ? -1 : 1;
        }
        return outlineOf(plain || {});
      },

      // Every polygon's outline in the plain style, stroked once (one path) into a canvas off
      // the page; its alpha is each pixel's outline coverage. Also under a hovered polygon,
      // which shows its plain outline again when the hover ends.
      _outlineMask: function (layers, w, h, m) {
        const mask = this._mask && this._mask.length === w * h ? this._mask : new Uint8Array(w * h);
        mask.fill(0);
        const o = this._plain;
        if (!o.stroke || !o.weight) { return mask; }
        const c = document.createElement("canvas");
        c.width = w; c.height = h;
        const ctx = c.getContext("2d", { willReadFrequently: true });
        ctx.setTransform(m, 0, 0, m, -this._bounds.min.x * m, -this._bounds.min.y * m);
        const all = new Path2D();
        for (const layer of layers) {
          if (layer instanceof L.Polygon && layer._parts && layer._parts.length) {
            all.addPath(pathOf(layer));
          }
        }
        ctx.setLineDash(o._dashArray || []);
        ctx.lineWidth = o.weight;
        ctx.lineCap = o.lineCap;
        ctx.lineJoin = o.lineJoin;
        ctx.strokeStyle = "#000";
        ctx.stroke(all);
        const d = ctx.getImageData(0, 0, w, h).data;
        for (let p = 0, i = 3; p < mask.length; p++, i += 4) { mask[p] = d[i]; }
        return mask;
      },

      // the 256 colours (by outline coverage) of a polygon with these options' fill
      _shadesOf: function (o) {
        const key = o && o.fill ? (o.fillColor || o.color) + "|" + o.fillOpacity : "";
        let shades = this._shades.get(key);
        if (!shades) {
          const line = this._plain;
          const fill = key ? rgba(o.fillColor || o.color) : [0, 0, 0, 0];
          const stroke = line.stroke && line.weight ? rgba(line.color) : [0, 0, 0, 0];
          shades = shadeTable(fill, key ? fill[3] * o.fillOpacity : 0,
                              stroke, stroke[3] * (line.opacity === undefined ? 1 : line.opacity));
          this._shades.set(key, shades);
        }
        return shades;
      },

      _fillSpans: function (layer) {
        const own = layer._gridSpans;
        if (!own) { return; }
        const shades = this._shadesOf(layer.options);
        const spans = this._spans, pix = this._pix, mask = this._mask;
        for (let k = own[0]; k < own[1]; k += 2) {
          for (let p = spans[k], end = spans[k + 1]; p < end; p++) { pix[p] = shades[mask[p]]; }
        }
      },

      // A polygon whose outline is not the plain one (the hovered grid), or a layer that is not
      // a polygon, is drawn on the canvas after the buffer is put: the hovered outline lies over
      // its neighbours, and goes with the next put of its box.
      _noteAlone: function (layer) {
        if (!layer._gridSpans || !sameOutline(layer.options, this._plain)) {
          this._alone.add(layer);
        } else {
          this._alone.delete(layer);
        }
      },

      // rects: the boxes just put (null: the whole canvas was). The alone layers' own boxes
      // are put first too, so an outline is never stroked twice over itself.
      _drawAlone: function (rects) {
        if (!this._alone.size) { return; }
        const layers = [];
        for (let o = this._drawFirst; o && layers.length < this._alone.size; o = o.next) {
          if (this._alone.has(o.layer) && o.layer._map) { layers.push(o.layer); }
        }
        if (rects) { this._put(layers.map(this._boxOf, this)); }
        const ctx = this._ctx;
        for (const layer of layers) {
          this._boxOf(layer);
          if (!layer._gridSpans) {
            this._drawing = true;  // Leaflet's own fill and stroke
            layer._updatePath();
            this._drawing = false;
            continue;
          }
          const o = layer.options;
          if (!o.stroke || !o.weight) { continue; }
          ctx.save();
          ctx.setLineDash(o._dashArray || []);
          ctx.globalAlpha = o.opacity;
          ctx.lineWidth = o.weight;
          ctx.strokeStyle = o.color;
          ctx.lineCap = o.lineCap;
          ctx.lineJoin = o.lineJoin;
          ctx.stroke(pathOf(layer));
          ctx.restore();
        }
      },
    });
  }

  // The grid renderer of ``map`` (one per map: a renderer belongs to one map). On the wall,
  // which nobody drags, the canvas is the map's size (Leaflet pads it by a tenth on each side
  // so a drag shows no empty edge: 1.44 times the pixels to clear, draw and composite at 4K);
  // a flight or a move is redrawn when it ends either way.
  function gridRenderer(map) {
    if (!map || typeof L === "undefined") { return undefined; }
    if (!map._cockpitGridRenderer) {
      GridCanvas = GridCanvas || define();
      const wall = map.getContainer().classList.contains("wall-map");
      map._cockpitGridRenderer = new GridCanvas({ padding: wall ? 0 : 0.1 });
    }
    return map._cockpitGridRenderer;
  }

  window.cockpitGridCanvas = { gridRenderer: gridRenderer };
})();
