/* The grid layer's canvas renderer. Leaflet's own canvas renderer, on any restyle, clears the
   union of the changed polygons' bounds and redraws every polygon inside it, each with its own
   fill() and stroke(): changed grids lie all over the city, so every update redrew the whole
   map (40,000 draw calls at 20,000 grids). This one
   - redraws only the boxes of the grids that changed (cleared and clipped to, with the
     neighbours reaching into them), found through a coarse pixel-cell index; and
   - draws the polygons of a redraw in one fill per colour and one stroke for all outlines
     (each polygon's path built once per projection and reused).
   The layers stay ordinary L.Polygon: hit-testing, tooltips and hover are Leaflet's. A polygon
   whose outline differs from the others' (the hovered one) or that has holes or several parts
   is drawn on its own after the batch, in Leaflet's order, so the hovered grid stays on top. */
(function () {
  "use strict";

  const CELL = 128;  // px: side of a cell of the index that finds the grids in a changed box
  // More changed boxes than this, or covering more than this share of the canvas: redraw it
  // all, as Leaflet does (measured at 20,000 grids, 4K: 300 boxes 65-107 ms to the painted
  // frame against 220-390 ms for the whole map; about even at 2,000).
  const MAX_BOXES = 2000;
  const MAX_AREA = 0.5;

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

  function outlineKey(o) {
    if (!o.stroke || o.weight === 0) { return ""; }
    return [o.color, o.weight, o.opacity, o.lineCap, o.lineJoin, o._dashArray].join("|");
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

      // -- which layers a redraw must touch ------------------------------------------------
      _extendRedrawBounds: function (layer) {
        L.Canvas.prototype._extendRedrawBounds.call(this, layer);
        if (!layer._pxBounds) { return; }
        const pad = (layer.options.weight || 0) + 1;
        const b = layer._pxBounds;
        (this._boxes = this._boxes || []).push(
          [b.min.x - pad, b.min.y - pad, b.max.x + pad, b.max.y + pad]);
      },

      // the index is stale whenever a polygon moves in pixels or joins or leaves the canvas
      _initPath: function (layer) { this._index = null; L.Canvas.prototype._initPath.call(this, layer); },
      _removePath: function (layer) { this._index = null; L.Canvas.prototype._removePath.call(this, layer); },
      _updatePath: function (layer) { this._index = null; L.Canvas.prototype._updatePath.call(this, layer); },
      _onZoomEnd: function () { this._index = null; L.Canvas.prototype._onZoomEnd.call(this); },
      _reset: function () { this._index = null; L.Canvas.prototype._reset.call(this); },
      // hover brings a grid to the front: renumber it, not the whole index
      _bringToFront: function (layer) {
        layer._gridOrder = this._nextOrder = (this._nextOrder || 0) + 1;
        L.Canvas.prototype._bringToFront.call(this, layer);
      },
      _bringToBack: function (layer) {
        layer._gridOrder = this._backOrder = (this._backOrder || 0) - 1;
        L.Canvas.prototype._bringToBack.call(this, layer);
      },
      _updatePaths: function () {
        this._index = null;
        this._boxes = null;  // Leaflet redraws everything after re-clipping
        L.Canvas.prototype._updatePaths.call(this);
      },

      _buildIndex: function () {
        const cells = new Map();
        let order = 0;
        for (let o = this._drawFirst; o; o = o.next) {
          const layer = o.layer;
          layer._gridOrder = order++;
          const b = layer._pxBounds;
          if (!b) { continue; }
          for (let cx = Math.floor(b.min.x / CELL); cx <= Math.floor(b.max.x / CELL); cx++) {
            for (let cy = Math.floor(b.min.y / CELL); cy <= Math.floor(b.max.y / CELL); cy++) {
              const key = cx + ":" + cy;
              const list = cells.get(key);
              if (list) { list.push(layer); } else { cells.set(key, [layer]); }
            }
          }
        }
        this._index = cells;
        this._nextOrder = order;
        this._backOrder = 0;
      },

      // -- redraw ----------------------------------------------------------------------
      _redraw: function () {
        const boxes = this._boxes;
        this._boxes = null;
        if (!this._redrawBounds || !boxes || !this._fewBoxes(boxes)) {
          L.Canvas.prototype._redraw.call(this);  // clears and calls _draw below
          return;
        }
        this._redrawRequest = null;
        this._redrawBoxes(boxes);
        this._redrawBounds = null;
      },

      // Each changed box in turn: clip to it, clear it, redraw the polygons reaching into it.
      // (One clip to all the boxes at once was slower: a complex clip costs a canvas-sized mask
      // in software raster.)
      _redrawBoxes: function (boxes) {
        if (!this._index) { this._buildIndex(); }
        const ctx = this._ctx;
        for (const box of boxes) {
          const x0 = Math.floor(box[0]), y0 = Math.floor(box[1]);
          const x1 = Math.ceil(box[2]), y1 = Math.ceil(box[3]);
          const stamp = (this._stamp = (this._stamp || 0) + 1);
          const hit = [];
          for (let cx = Math.floor(x0 / CELL); cx <= Math.floor(x1 / CELL); cx++) {
            for (let cy = Math.floor(y0 / CELL); cy <= Math.floor(y1 / CELL); cy++) {
              for (const layer of this._index.get(cx + ":" + cy) || []) {
                const b = layer._pxBounds;
                if (layer._gridStamp === stamp || b.max.x < x0 || b.min.x > x1 ||
                    b.max.y < y0 || b.min.y > y1) { continue; }
                layer._gridStamp = stamp;
                hit.push(layer);
              }
            }
          }
          hit.sort(function (a, b) { return a._gridOrder - b._gridOrder; });
          ctx.save();
          ctx.beginPath();
          ctx.rect(x0, y0, x1 - x0, y1 - y0);
          ctx.clip();
          ctx.clearRect(x0, y0, x1 - x0, y1 - y0);
          this._drawBatched(hit);
          ctx.restore();
        }
      },

      _fewBoxes: function (boxes) {
        if (boxes.length > MAX_BOXES) { return false; }
        let area = 0;
        for (const box of boxes) { area += (box[2] - box[0]) * (box[3] - box[1]); }
        const size = this._bounds.getSize();
        return area < MAX_AREA * size.x * size.y;
      },

      // Draw now what is due at the next frame: a caller already in an animation frame
      // (assets/push.js) saves a frame's wait.
      flush: function () {
        if (!this._redrawRequest) { return; }
        L.Util.cancelAnimFrame(this._redrawRequest);
        this._redraw();
      },

      // Leaflet's whole-map (or union-of-bounds) redraw, batched.
      _draw: function () {
        const bounds = this._redrawBounds;
        const ctx = this._ctx;
        ctx.save();
        if (bounds) {
          const size = bounds.getSize();
          ctx.beginPath();
          ctx.rect(bounds.min.x, bounds.min.y, size.x, size.y);
          ctx.clip();
        }
        const layers = [];
        for (let o = this._drawFirst; o; o = o.next) {
          const layer = o.layer;
          if (!bounds || (layer._pxBounds && layer._pxBounds.intersects(bounds))) {
            layers.push(layer);
          }
        }
        this._drawBatched(layers);
        ctx.restore();
      },

      // One fill per colour, then one stroke for the outlines most polygons share; the rest on
      // their own afterwards, in the order given.
      _drawBatched: function (layers) {
        const ctx = this._ctx;
        const keys = new Map();
        for (const layer of layers) {
          const key = outlineKey(layer.options);
          keys.set(key, (keys.get(key) || 0) + 1);
        }
        let common = null, most = 0;
        keys.forEach(function (n, key) { if (n > most) { most = n; common = key; } });
        const fills = new Map();
        const outline = new Path2D();
        let outlined = null;
        const alone = [];
        for (const layer of layers) {
          const o = layer.options;
          if (!layer._parts || !layer._parts.length) { continue; }  // clipped away
          if (!(layer instanceof L.Polygon) || layer._parts.length > 1 ||
              outlineKey(o) !== common) { alone.push(layer); continue; }
          const path = pathOf(layer);
          if (o.fill) {
            const key = (o.fillColor || o.color) + "|" + o.fillOpacity;
            const group = fills.get(key);
            if (group) { group.addPath(path); } else { const p = new Path2D(); p.addPath(path); fills.set(key, p); }
          }
          if (common) { outline.addPath(path); outlined = o; }
        }
        fills.forEach(function (path, key) {
          const cut = key.lastIndexOf("|");
          ctx.globalAlpha = Number(key.slice(cut + 1));
          ctx.fillStyle = key.slice(0, cut);
          ctx.fill(path);  // nonzero: neighbours' shared edges leave no seam
        });
        if (outlined) {
          ctx.setLineDash(outlined._dashArray || []);
          ctx.globalAlpha = outlined.opacity;
          ctx.lineWidth = outlined.weight;
          ctx.strokeStyle = outlined.color;
          ctx.lineCap = outlined.lineCap;
          ctx.lineJoin = outlined.lineJoin;
          ctx.stroke(outline);
        }
        this._drawing = true;  // Leaflet's own fill and stroke for these
        for (const layer of alone) { layer._updatePath(); }
        this._drawing = false;
      },
    });
  }

  // Every Leaflet canvas of the page (the grids' and each vector pane's: sites, boundaries,
  // gauges, trails) gets a desynchronized 2D context. In software compositing (no GPU, as on
  // the benchmark's headless Chromium) Chrome copies every ordinary canvas into a new
  // compositor resource on every frame of the page, changed or not: at 4K, five canvases of
  // up to 4069x2412 cost 50-200 ms of the main thread per frame (frames come with any change
  // on the page: a badge, a KPI), in front of the frame that shows new grid colours. A
  // desynchronized canvas hands its content to the compositor only when it was drawn to.
  function lowLatency() {
    if (typeof L === "undefined" || !L.Canvas || L.Canvas.prototype._cockpitLowLatency) { return; }
    const initContainer = L.Canvas.prototype._initContainer;
    L.Canvas.include({
      _cockpitLowLatency: true,
      _initContainer: function () {
        const proto = HTMLCanvasElement.prototype;
        const getContext = proto.getContext;
        proto.getContext = function (kind, options) {
          return getContext.call(this, kind,
                                 kind === "2d" ? Object.assign({ desynchronized: true }, options) : options);
        };
        try { initContainer.call(this); } finally { proto.getContext = getContext; }
      },
    });
  }
  lowLatency();

  // The grid renderer of ``map`` (one per map: a renderer belongs to one map). On the wall,
  // which nobody drags, the canvas is the map's size (Leaflet pads it by a tenth on each side
  // so a drag shows no empty edge: 1.44 times the pixels to clear, draw and composite at 4K);
  // a flight or a move is redrawn when it ends either way.
  function gridRenderer(map) {
    if (!map || typeof L === "undefined") { return undefined; }
    if (!map._cockpitGridRenderer) {
      lowLatency();
      GridCanvas = GridCanvas || define();
      const wall = map.getContainer().classList.contains("wall-map");
      map._cockpitGridRenderer = new GridCanvas({ padding: wall ? 0 : 0.1 });
    }
    return map._cockpitGridRenderer;
  }

  window.cockpitGridCanvas = { gridRenderer: gridRenderer };
})();
