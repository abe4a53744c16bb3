// vector-primer's page: plain JS, no dependencies, every number fetched from the HTTP API.
"use strict";

(() => {
  const KEY = "vp.apiKey"; // sessionStorage: this tab only, gone when it closes
  const VIEWS = ["search", "analogy", "similarity", "softmax", "attention", "descent"];
  const $ = (id) => document.getElementById(id);

  // ---- DOM helpers -----------------------------------------------------------------------
  function el(tag, props = {}, ...children) {
    const node = document.createElement(tag);
    for (const [k, v] of Object.entries(props)) {
      if (k === "class") node.className = v;
      else if (k === "text") node.textContent = v;
      else if (k === "style") Object.assign(node.style, v);
      else if (k === "data") Object.assign(node.dataset, v);
      else node.setAttribute(k, v);
    }
    for (const c of children) node.append(c);
    return node;
  }
  const fmt = (x, digits = 3) => (Math.abs(x) >= 1e4 || (x !== 0 && Math.abs(x) < 1e-3)
    ? x.toExponential(2) : x.toFixed(digits));

  // viridis, 9 stops from matplotlib: dark = low, yellow = high
  const VIRIDIS = ["#440154", "#482878", "#3e4989", "#31688e", "#26828e", "#1f9e89",
    "#35b779", "#6ece58", "#fde725"].map((h) => [1, 3, 5].map((i) => parseInt(h.slice(i, i + 2), 16)));
  function viridis(t) {
    const x = Math.min(1, Math.max(0, Number.isFinite(t) ? t : 0)) * (VIRIDIS.length - 1);
    const i = Math.min(VIRIDIS.length - 2, Math.floor(x));
    const f = x - i;
    return VIRIDIS[i].map((c, j) => Math.round(c + f * (VIRIDIS[i + 1][j] - c)));
  }
  const rgb = (c) => `rgb(${c[0]}, ${c[1]}, ${c[2]})`;
  const inkOn = (c) => (0.299 * c[0] + 0.587 * c[1] + 0.114 * c[2] > 150 ? "#1f2328" : "#ffffff");

  // ---- the API ---------------------------------------------------------------------------
  class ApiError extends Error {
    constructor(status, body) {
      super(`${status} ${body.error}: ${body.detail}`);
      this.status = status;
      this.body = body;
    }
  }

  async function call(method, path, body) {
    const headers = {};
    const key = sessionStorage.getItem(KEY);
    if (key) headers.Authorization = `Bearer ${key}`;
    const init = { method, headers };
    if (body !== undefined) {
      headers["Content-Type"] = "application/json";
      init.body = JSON.stringify(body);
    }
    const r = await fetch(path, init);
    if (!r.ok) {
      let err;
      try { err = await r.json(); } catch { err = { error: "http_error", detail: r.statusText }; }
      throw new ApiError(r.status, err);
    }
    return r;
  }
  const getJSON = async (path) => (await call("GET", path)).json();
  const postJSON = async (path, body) => (await call("POST", path, body)).json();

  function showError(view, err) {
    const box = $(`${view}-error`);
    if (!err) { box.hidden = true; box.textContent = ""; return; }
    let text = err instanceof ApiError ? err.message : `cannot reach the service: ${err.message}`;
    if (err.status === 401) text += " — type the API key at the top right.";
    if (err.status === 403) text += " — this key may not do that.";
    box.textContent = text;
    box.hidden = false;
  }

  const latest = {}; // per view: only the newest run may show its error

  async function guarded(view, work) {
    const run = (latest[view] = (latest[view] || 0) + 1);
    showError(view, null);
    try { await work(); } catch (e) { if (latest[view] === run) showError(view, e); }
  }

  // ---- search ----------------------------------------------------------------------------
  async function loadCollections() {
    const select = $("search-collection");
    const previous = select.value;
    const { collections } = await getJSON("/v1/collections");
    select.replaceChildren(...collections.map((c) => el("option", {
      value: c.name, text: `${c.name} (${c.count} docs, ${c.index}, ${c.metric})` })));
    const names = collections.map((c) => c.name);
    const preferred = collections.find((c) => c.name !== "words" && c.count > 0);
    if (names.includes(previous)) select.value = previous;
    else if (preferred) select.value = preferred.name;
    return collections.length > 0;
  }

  const RRF_K = 60; // sent with every rrf search, so the sums shown are the server's
  const slider = (id) => Number($(id).value) / 100;
  const diversity = () => slider("search-diversity") || null; // 0: off, not sent

  function showSearchOptions() {
    const hybrid = $("search-mode").value === "hybrid";
    $("search-fusion-box").hidden = !hybrid;
    $("search-alpha-box").hidden = !(hybrid && $("search-fusion").value === "convex");
    $("search-alpha-value").textContent = slider("search-alpha").toFixed(2);
    $("search-diversity-value").textContent = diversity() === null ? "off" : diversity().toFixed(2);
  }

  function searchBody() {
    const body = { query: $("search-query").value, k: Number($("search-k").value) || 5 };
    const filter = $("search-filter").value.trim();
    if (filter) {
      try { body.filter = JSON.parse(filter); } catch (e) {
        throw new ApiError(400, { error: "invalid_input", detail: `filter is not JSON (${e.message})` });
      }
    }
    body.mode = $("search-mode").value;
    if (body.mode === "hybrid") {
      body.fusion = $("search-fusion").value;
      if (body.fusion === "rrf") body.rrf_k = RRF_K;
      else body.alpha = slider("search-alpha");
    }
    if (diversity() !== null) body.diversity = diversity();
    if ($("search-group").checked) body.group_by_document = true;
    return body;
  }

  let searchSeq = 0;

  async function runSearch() {
    const name = $("search-collection").value;
    if (!name) throw new Error("no collection yet: create one with PUT /v1/collections");
    const body = searchBody();
    const seq = ++searchSeq;
    const t0 = performance.now();
    const r = await postJSON(`/v1/collections/${encodeURIComponent(name)}/search`, body);
    const ms = performance.now() - t0;
    if (seq !== searchSeq) return; // a newer search already asked
    const how = {
      vector: `metric ${r.metric} (${closeness(r)})`,
      keyword: "BM25 keyword scores (higher is better)",
      hybrid: `${body.fusion} fusion of ${r.metric} and BM25 (higher is better)`,
    }[body.mode];
    $("search-summary").textContent =
      `${r.hits.length} hits from ${name} · ${how} · ${ms.toFixed(0)} ms`;
    renderHits(r, body);
    $("search-math").textContent = searchMath(r, body);
  }

  const closeness = (r) => (r.higher_is_better ? "higher is closer" : "a distance: lower is closer");
  const rrfSum = (h) => [h.vector_rank, h.keyword_rank].filter((x) => x !== undefined)
    .map((x) => `1/(${RRF_K} + ${x})`).join(" + ");

  function renderHits(r, body) {
    const higher = body.mode !== "vector" || r.higher_is_better; // BM25 and fused: higher is better
    const scores = r.hits.map((h) => h.score);
    const best = higher ? Math.max(...scores, 1e-9) : Math.min(...scores);
    const width = (s) => (higher ? Math.max(0, s) / best : (best + 1e-6) / (s + 1e-6));
    const hybrid = body.mode === "hybrid";
    const rrf = hybrid && body.fusion === "rrf";
    const passages = r.hits.some((h) => h.passage || h.passages_matched !== undefined);
    const side = (name, rank, score) => (rank === undefined
      ? el("td", { class: `num ${name} missed`, title: "not in this side's candidates", text: "–" })
      : el("td", { class: `num ${name}` }, el("span", { class: "rank", text: `#${rank}` }), " ",
        el("span", { class: "val", text: fmt(score, 4) })));
    const rows = r.hits.map((h, i) => el("tr", { data: { id: h.id } },
      el("td", { class: "num", text: String(i + 1) }),
      el("td", { class: "num score", title: rrf ? `${rrfSum(h)} = ${h.score}` : String(h.score) },
        el("span", { class: "scorebar", style: { width: `${Math.round(60 * width(h.score))}px` } }),
        el("span", { class: "val", text: fmt(h.score, 4) }),
        ...(rrf ? [el("span", { class: "why", text: `= ${rrfSum(h)}` })] : [])),
      ...(hybrid ? [side("vector", h.vector_rank, h.vector_score),
        side("keyword", h.keyword_rank, h.keyword_score)] : []),
      el("td", { class: "id", text: h.id }),
      ...(passages ? [el("td", { class: "num passage", ...passageText(h) })] : []),
      el("td", { class: "text", text: h.text ?? "" }),
      el("td", { class: "meta", text: JSON.stringify(h.metadata) })));
    const names = ["#", hybrid ? "fused score" : "score",
      ...(hybrid ? [`vector # · ${r.metric}`, "keyword # · BM25"] : []),
      "id", ...(passages ? ["passage · chars"] : []), "text", "metadata"];
    const head = el("tr", {}, ...names.map((t) => el("th", { text: t })));
    $("search-results").replaceChildren(el("thead", {}, head), el("tbody", {}, ...rows));
  }

  function passageText(h) {
    const p = h.passage;
    const matched = h.passages_matched === undefined ? "" : ` · ${h.passages_matched} matched`;
    if (!p) return { text: `whole${matched}`, title: "the whole text: short enough for one row" };
    return { text: `#${p.index} · ${p.start}–${p.end}${matched}`,
      title: `passage ${p.id}: characters ${p.start}–${p.end} of document ${p.document}` };
  }

  function searchMath(r, body) {
    const lines = [];
    if (body.mode === "vector") {
      lines.push(`score = ${r.metric}(query vector, document vector), ${closeness(r)}.`);
    } else if (body.mode === "keyword") {
      lines.push("score = BM25 = Σ over the query's words t found in the text of idf(t) · tf / " +
        "(tf + 1.5 · (0.25 + 0.75 · length / average length)), idf(t) = ln(1 + (N − df + 0.5) / " +
        "(df + 0.5)): rare words count more, repeats less and less, long texts are discounted " +
        "(words lower-cased and stemmed, stop words dropped); a text with none of them is no hit.");
    } else if (body.fusion === "rrf") {
      lines.push(`score = 1/(${RRF_K} + vector rank) + 1/(${RRF_K} + keyword rank), ranks from 1 ` +
        "among each side's candidates; a side that missed the hit (–) adds nothing, so only ranks " +
        "matter and the two score scales never meet. Under each score: its own sum (hover for " +
        "all the digits).");
    } else {
      const a = body.alpha.toFixed(2);
      lines.push(`score = ${a} · v′ + ${(1 - body.alpha).toFixed(2)} · k′, where v′ = (vector ` +
        "score − worst) / (best − worst) over the vector side's candidates (its best 100 or more, " +
        "not only the hits shown), k′ likewise for BM25, and a side that missed the hit (–) gives " +
        "it 0.");
    }
    if (body.diversity !== undefined) {
      lines.push(`MMR, diversity ${body.diversity.toFixed(2)}: each next hit is the candidate with ` +
        `the highest ${(1 - body.diversity).toFixed(2)} · relevance − ${body.diversity.toFixed(2)} · ` +
        "(its highest cosine to the hits above); each keeps its own score, so the list need not " +
        "be sorted by it.");
    }
    if (body.group_by_document) {
      lines.push("One hit per document: its best passage, and how many of its passages were " +
        "among the candidates.");
    }
    return r.hits.length ? lines.join(" ") : "";
  }

  // ---- analogy ---------------------------------------------------------------------------
  async function runAnalogy() {
    const q = new URLSearchParams({
      q: $("analogy-expr").value,
      collection: $("analogy-collection").value || "words",
      method: $("analogy-method").value,
      k: String(Number($("analogy-k").value) || 5),
    });
    const r = await getJSON(`/v1/analogy?${q}`);
    const top = r.hits[0];
    $("analogy-summary").textContent = top
      ? `${r.expression} ≈ ${top.id}   (${r.method}, ${r.collection})` : "no answer";
    const terms = r.terms.map((t) => t.term);
    const negative = new Set(parseNegatives(r.expression));
    const head = el("tr", {}, el("th", { text: "#" }), el("th", { text: "answer" }),
      el("th", { text: "score" }),
      ...terms.map((t) => el("th", { text: `cos(·, ${negative.has(t) ? "−" : "+"}${t})` })));
    const rows = r.hits.map((h, i) => el("tr", { data: { id: h.id } },
      el("td", { class: "num", text: String(i + 1) }),
      el("td", { class: "id answer", text: h.id }),
      el("td", { class: "num", text: fmt(h.score, 4) }),
      ...terms.map((t) => el("td", { class: "num" }, cosBar(h.cosines[t])))));
    $("analogy-results").replaceChildren(el("thead", {}, head), el("tbody", {}, ...rows));
  }

  function parseNegatives(expression) {
    // the server writes it as `a - b + c`: a term after " - " was subtracted
    return [...expression.matchAll(/ - ([^+-]+)/g)].map((m) => m[1].trim());
  }

  function cosBar(c) {
    if (c === undefined) return el("span", { text: "–" });
    const bar = el("span", { class: c < 0 ? "bar neg" : "bar",
      style: { width: `${Math.round(Math.abs(c) * 60)}px` } });
    return el("span", { class: "cos" }, bar, el("span", { text: fmt(c, 3) }));
  }

  // ---- similarity ------------------------------------------------------------------------
  let similarity = null;

  async function runSimilarity() {
    const texts = $("similarity-texts").value.split("\n").map((s) => s.trim()).filter(Boolean);
    if (texts.length < 2) throw new Error("give at least two sentences, one a line");
    similarity = await postJSON("/v1/similarity", { texts });
    renderSimilarity();
  }

  function renderSimilarity() {
    if (!similarity) return;
    const measure = $("similarity-measure").value;
    const m = similarity[measure];
    const flat = m.flat();
    const [lo, hi] = measure === "cosine" ? [Math.min(0, ...flat), 1] : [Math.min(...flat), Math.max(...flat)];
    const closer = measure === "cosine" || measure === "dot"; // else smaller is closer
    const t = (v) => { const u = (v - lo) / (hi - lo || 1); return closer ? u : 1 - u; };
    const label = (s, i) => `${i + 1}. ${s.length > 48 ? `${s.slice(0, 47)}…` : s}`;
    heatmap($("similarity-heatmap"), similarity.texts.map(label),
      similarity.texts.map((_, i) => String(i + 1)), m, t, (v) => fmt(v, measure === "angle_degrees" ? 1 : 2),
      `${measure} between sentences (${similarity.embedder}, ${similarity.dim} dimensions); ` +
      "brighter = closer");
  }

  function heatmap(box, rowLabels, colLabels, matrix, t, show, caption) {
    const head = el("tr", {}, el("th"), ...colLabels.map((c) => el("th", { class: "col", text: c })));
    const rows = matrix.map((row, i) => el("tr", {}, el("th", { class: "rowh", text: rowLabels[i], title: rowLabels[i] }),
      ...row.map((v, j) => {
        const c = viridis(t(v));
        return el("td", { title: `${rowLabels[i]} → ${colLabels[j]}: ${v}`,
          style: { background: rgb(c), color: inkOn(c) }, text: show ? show(v) : "" });
      })));
    box.replaceChildren(el("table", {}, el("thead", {}, head), el("tbody", {}, ...rows)),
      el("p", { class: "scale", text: caption }));
  }

  // ---- softmax ---------------------------------------------------------------------------
  let softmaxSeq = 0;
  const temperature = () => 10 ** (((Number($("softmax-temperature").value) - 50) / 50) * 1.3);

  async function runSoftmax() {
    const logits = $("softmax-logits").value.split(/[,\s]+/).filter(Boolean).map(Number);
    if (!logits.length || logits.some((x) => !Number.isFinite(x))) {
      throw new ApiError(400, { error: "invalid_input", detail: "logits must be numbers, comma-separated" });
    }
    const T = temperature();
    $("softmax-t").textContent = T.toFixed(2);
    const seq = ++softmaxSeq;
    const r = await postJSON("/v1/math/softmax", { logits, temperature: T });
    if (seq !== softmaxSeq) return; // a newer slider position already asked
    const bars = $("softmax-bars");
    bars.dataset.temperature = T.toFixed(4);
    bars.replaceChildren(...r.probs.map((p, i) => el("div", { class: "barcol" },
      el("span", { class: "prob", text: p.toFixed(3) }),
      el("div", { class: "bar", data: { prob: String(p) }, style: { height: `${(p * 100).toFixed(2)}%` } }),
      el("span", { class: "label", text: `x${i + 1} = ${logits[i]}` }))));
    const maxH = Math.log(logits.length);
    $("softmax-summary").textContent = `T = ${T.toFixed(2)} · entropy ${r.entropy.toFixed(3)} nats ` +
      `of at most ln ${logits.length} = ${maxH.toFixed(3)} · the top option gets ` +
      `${(100 * Math.max(...r.probs)).toFixed(1)} % of the vote`;
  }

  // ---- attention -------------------------------------------------------------------------
  async function runAttention() {
    const r = await postJSON("/v1/math/attention", {
      text: $("attention-text").value, causal: $("attention-causal").checked });
    const n = Math.min(r.tokens.length, 48);
    const tokens = r.tokens.slice(0, n);
    const w = r.weights.slice(0, n).map((row) => row.slice(0, n));
    const top = Math.max(...w.flat());
    heatmap($("attention-heatmap"), tokens, tokens, w, (v) => v / top, n <= 16 ? (v) => v.toFixed(2) : null,
      `softmax(Q Kᵀ / √d) over ${r.tokens.length} tokens (${r.embedder}); ` +
      `each row sums to 1; brightest = ${top.toFixed(2)}`);
  }

  // ---- descent ---------------------------------------------------------------------------
  // The same three landscapes as primer_math/surfaces.py (the browser test checks they agree);
  // only the background is computed here, the paths are the API's.
  const SURFACES = {
    bowl: { f: (x, y) => 0.5 * (x * x + 10 * y * y), window: [-5, 5, -2.5, 2.5], minimum: [0, 0] },
    rosenbrock: { f: (x, y) => (1 - x) ** 2 + 100 * (y - x * x) ** 2, window: [-2, 2, -1, 3], minimum: [1, 1] },
    saddle: { f: (x, y) => x * x - y * y + y ** 4 / 4, window: [-2, 2, -2.2, 2.2], minimum: [0, Math.SQRT2] },
  };
  window.vpSurfaces = SURFACES;
  const OPTIMIZERS = { sgd: "#e8590c", momentum: "#2f9e44", adam: "#1971c2", adamw: "#c2255c" };
  let plotUrl = null;

  function sizeCanvas(canvas) {
    const dpr = window.devicePixelRatio || 1;
    const w = canvas.clientWidth || canvas.width;
    const h = canvas.clientHeight || canvas.height;
    canvas.width = Math.round(w * dpr);
    canvas.height = Math.round(h * dpr);
    const ctx = canvas.getContext("2d");
    ctx.setTransform(dpr, 0, 0, dpr, 0, 0);
    return [ctx, w, h];
  }

  async function runDescent() {
    const surface = $("descent-surface").value;
    const steps = Number($("descent-steps").value) || 300;
    const runs = await Promise.all(Object.keys(OPTIMIZERS).map((optimizer) =>
      postJSON("/v1/math/descent", { surface, optimizer, steps })));
    drawSurface(surface, runs);
    drawLosses(surface, runs);
    renderLegend(runs);
    await loadDescentPlot();
  }

  function drawSurface(name, runs) {
    const s = SURFACES[name];
    const [x0, x1, y0, y1] = s.window;
    const canvas = $("descent-canvas");
    const [ctx, w, h] = sizeCanvas(canvas);
    const X = (x) => ((x - x0) / (x1 - x0)) * w;
    const Y = (y) => h - ((y - y0) / (y1 - y0)) * h;
    const fmin = s.f(...s.minimum);
    const cell = 4;
    const z = [];
    for (let j = 0; j < h; j += cell) {
      for (let i = 0; i < w; i += cell) {
        const x = x0 + ((i + cell / 2) / w) * (x1 - x0);
        const y = y1 - ((j + cell / 2) / h) * (y1 - y0);
        z.push([i, j, Math.log1p(Math.max(0, s.f(x, y) - fmin))]);
      }
    }
    const zmax = Math.max(...z.map((p) => p[2]));
    for (const [i, j, v] of z) {
      const band = Math.floor((v / zmax) * 14) / 14; // stepped: bands read as contour lines
      const c = viridis(band).map((ch) => Math.round(ch + (255 - ch) * 0.45)); // lightened
      ctx.fillStyle = rgb(c);
      ctx.fillRect(i, j, cell, cell);
    }
    ctx.font = "20px system-ui, sans-serif";
    ctx.fillStyle = "#1f2328";
    ctx.textAlign = "center";
    ctx.textBaseline = "middle";
    ctx.fillText("★", X(s.minimum[0]), Y(s.minimum[1]));
    const clamp = (v, lo, hi) => Math.min(hi + (hi - lo), Math.max(lo - (hi - lo), v));
    for (const r of runs) {
      const color = OPTIMIZERS[r.optimizer];
      ctx.strokeStyle = color;
      ctx.lineWidth = 2;
      ctx.beginPath();
      r.trajectory.forEach(([x, y], k) => {
        const px = X(clamp(x, x0, x1));
        const py = Y(clamp(y, y0, y1));
        if (k === 0) ctx.moveTo(px, py); else ctx.lineTo(px, py);
      });
      ctx.stroke();
      const [ex, ey] = r.trajectory[r.trajectory.length - 1];
      ctx.fillStyle = color;
      ctx.beginPath();
      ctx.arc(X(clamp(ex, x0, x1)), Y(clamp(ey, y0, y1)), 4, 0, 2 * Math.PI);
      ctx.fill();
    }
    const [sx, sy] = runs[0].trajectory[0];
    ctx.strokeStyle = "#1f2328";
    ctx.lineWidth = 2;
    ctx.beginPath();
    ctx.arc(X(sx), Y(sy), 6, 0, 2 * Math.PI);
    ctx.stroke();
    ctx.font = "12px system-ui, sans-serif";
    ctx.textAlign = "left";
    ctx.fillText(`start (${sx}, ${sy})`, X(sx) + 9, Y(sy) - 10);
    ctx.fillStyle = "#656d76";
    ctx.fillText(`${name}: x ∈ [${x0}, ${x1}], y ∈ [${y0}, ${y1}]`, 8, h - 10);
  }

  function drawLosses(name, runs) {
    const canvas = $("descent-losses");
    const [ctx, w, h] = sizeCanvas(canvas);
    const fmin = SURFACES[name].f(...SURFACES[name].minimum);
    const logs = runs.map((r) => r.losses.map((l) => Math.log10(Math.max(l - fmin, 1e-12))));
    const all = logs.flat().filter(Number.isFinite);
    const lo = Math.max(Math.min(...all), -12);
    const hi = Math.min(Math.max(...all), 12);
    const n = Math.max(...runs.map((r) => r.losses.length));
    const pad = 30;
    ctx.fillStyle = "#ffffff";
    ctx.fillRect(0, 0, w, h);
    ctx.fillStyle = "#656d76";
    ctx.font = "11px system-ui, sans-serif";
    ctx.fillText(`log₁₀(loss − min): ${hi.toFixed(0)}`, pad, 12);
    ctx.fillText(`${lo.toFixed(0)}`, pad, h - pad + 4);
    ctx.fillText(`step → ${n - 1}`, w - 70, h - 8);
    runs.forEach((r, k) => {
      ctx.strokeStyle = OPTIMIZERS[r.optimizer];
      ctx.lineWidth = 1.5;
      ctx.beginPath();
      logs[k].forEach((v, i) => {
        const px = pad + (i / Math.max(1, n - 1)) * (w - pad - 8);
        const py = 18 + (1 - (Math.min(hi, Math.max(lo, v)) - lo) / (hi - lo || 1)) * (h - pad - 22);
        if (i === 0) ctx.moveTo(px, py); else ctx.lineTo(px, py);
      });
      ctx.stroke();
    });
  }

  function renderLegend(runs) {
    const head = el("tr", {}, ...["optimizer", "lr", "final loss", "steps"].map((t) => el("th", { text: t })));
    const rows = runs.map((r) => el("tr", { data: { optimizer: r.optimizer } },
      el("td", {}, el("span", { class: "swatch", style: { background: OPTIMIZERS[r.optimizer] } }),
        ` ${r.optimizer}`),
      el("td", { text: String(r.lr) }),
      el("td", { text: r.diverged ? "diverged" : fmt(r.losses[r.losses.length - 1], 4) }),
      el("td", { text: String(r.trajectory.length - 1) })));
    $("descent-legend").replaceChildren(el("thead", {}, head), el("tbody", {}, ...rows));
  }

  async function loadDescentPlot() {
    const q = new URLSearchParams({
      surface: $("descent-surface").value,
      optimizer: $("descent-plot-optimizer").value,
      steps: String(Math.min(2000, Number($("descent-steps").value) || 300)),
    });
    const blob = await (await call("GET", `/v1/math/plot/descent?${q}`)).blob();
    if (plotUrl) URL.revokeObjectURL(plotUrl);
    plotUrl = URL.createObjectURL(blob); // an <img src> could not send the API key
    $("descent-plot").src = plotUrl;
  }

  // ---- views, the key field, readiness --------------------------------------------------
  const RUN = {
    search: async () => { if (await loadCollections()) await runSearch(); },
    analogy: runAnalogy,
    similarity: runSimilarity,
    softmax: runSoftmax,
    attention: runAttention,
    descent: runDescent,
  };
  const started = new Set();

  function current() {
    const v = location.hash.slice(1);
    return VIEWS.includes(v) ? v : "search";
  }

  function show(view) {
    for (const v of VIEWS) $(`view-${v}`).hidden = v !== view;
    for (const a of document.querySelectorAll("#tabs a[data-view]")) {
      a.classList.toggle("active", a.dataset.view === view);
    }
    if (!started.has(view)) {
      started.add(view);
      guarded(view, RUN[view]);
    }
  }

  let readyTimer = null;

  async function checkReady() {
    clearTimeout(readyTimer);
    const status = $("status");
    try {
      const key = sessionStorage.getItem(KEY); // with a key, /readyz tells the details
      const r = await fetch("/readyz", { headers: key ? { Authorization: `Bearer ${key}` } : {} });
      const body = await r.json();
      if (r.ok) {
        const n = body.collections ? ` · ${body.collections.length} collections` : "";
        status.textContent = `ready${n}`;
        status.className = "status ready";
        return;
      }
      status.textContent = body.detail;
      status.className = "status";
    } catch {
      status.textContent = "offline";
      status.className = "status bad";
    }
    readyTimer = setTimeout(checkReady, 2000);
  }

  function onSubmit(form, view, work) {
    $(form).addEventListener("submit", (e) => { e.preventDefault(); guarded(view, work); });
  }

  function start() {
    const key = $("api-key");
    key.value = sessionStorage.getItem(KEY) || "";
    key.addEventListener("change", () => {
      if (key.value) sessionStorage.setItem(KEY, key.value); else sessionStorage.removeItem(KEY);
      started.clear();
      show(current());
      checkReady();
    });
    onSubmit("search-form", "search", runSearch);
    $("search-collection").addEventListener("change", () => guarded("search", runSearch));
    for (const id of ["search-mode", "search-fusion", "search-alpha", "search-diversity",
      "search-group"]) {
      $(id).addEventListener("input", showSearchOptions);
      $(id).addEventListener("change", () => guarded("search", runSearch));
    }
    onSubmit("analogy-form", "analogy", runAnalogy);
    onSubmit("similarity-form", "similarity", runSimilarity);
    $("similarity-measure").addEventListener("change", renderSimilarity);
    onSubmit("softmax-form", "softmax", runSoftmax);
    $("softmax-temperature").addEventListener("input", () => guarded("softmax", runSoftmax));
    $("softmax-logits").addEventListener("change", () => guarded("softmax", runSoftmax));
    onSubmit("attention-form", "attention", runAttention);
    $("attention-causal").addEventListener("change", () => guarded("attention", runAttention));
    onSubmit("descent-form", "descent", runDescent);
    $("descent-surface").addEventListener("change", () => guarded("descent", runDescent));
    $("descent-plot-optimizer").addEventListener("change", () => guarded("descent", loadDescentPlot));
    showSearchOptions(); // the browser may restore the form's values on a reload
    window.addEventListener("hashchange", () => show(current()));
    show(current());
    checkReady();
  }

  document.addEventListener("DOMContentLoaded", start);
})();
