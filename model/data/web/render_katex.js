#!/usr/bin/env node
// Render formulas with KaTeX in headless Chromium and screenshot each one, for
// model/data/render_web.py (which crops, recolours nothing and writes the labels).
//
// Input (stdin, one JSON object):
//   {"executable": "/usr/lib/chromium/chromium", "outDir": "/tmp/x", "pageSize": 40,
//    "timeoutMs": 30000,
//    "items": [{"latex": "x^2", "px": 18, "display": true, "scale": 1,
//               "color": "#000000", "background": "#ffffff"}, ...]}
// Output (stdout, one JSON object per line, in item order within each page):
//   {"i": 1, "error": "KaTeX parse error: ..."} KaTeX refused it (throwOnError, strict)
//   {"page": "/tmp/x/page-0.png", "items": [{"i": 0, "rect": [x, y, w, h]}, ...]}
//        a full-page screenshot (device pixels) and each formula's element box on it, in CSS
//        px: the formula with PAD css px of its own background around it
//   {"done": true, "katex": "0.16.x", "browser": "..."} at the end
//   {"fatal": "..."}                             and exit code 1 when nothing can be drawn
//
// KaTeX typesets in Node (renderToString) so a formula it cannot draw is reported, never drawn
// wrong; the browser only lays out and paints the HTML.  The KaTeX CSS is inlined with its
// woff2 fonts as data: URLs and the page is filled with page.setContent, so nothing is fetched
// from disk or network.  Many formulas share one page load and one screenshot.
"use strict";

const fs = require("fs");
const path = require("path");
const katex = require("katex");
const { chromium } = require("playwright-core");

const PAD = 40; // css px of background around each formula (a sloppy crop needs <= 30 device px)
const GAP = 8;  // css px of page between formulas, so that no box touches another
const FLAGS = [
  "--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
  "--disable-background-networking", "--disable-component-update", "--disable-sync",
  "--disable-breakpad", "--disable-dev-shm-usage", "--font-render-hinting=none",
];

function emit(obj) {
  process.stdout.write(JSON.stringify(obj) + "\n");
}

function inlinedCss() {
  const dist = path.dirname(require.resolve("katex/dist/katex.min.css"));
  const css = fs.readFileSync(path.join(dist, "katex.min.css"), "utf8");
  // each @font-face lists woff2, woff and ttf; keep the woff2 file, inlined
  return css.replace(/src:url\(fonts\/([^)]+?)\.woff2\) format\("woff2"\)[^;}]*/g, (_, name) => {
    const data = fs.readFileSync(path.join(dist, "fonts", name + ".woff2")).toString("base64");
    return `src:url(data:font/woff2;base64,${data}) format("woff2")`;
  });
}

function escapeHtml(s) {
  return s.replace(/[&<>"]/g, (c) => ({ "&": "&amp;", "<": "&lt;", ">": "&gt;", '"': "&quot;" }[c]));
}

function typeset(item) {
  return katex.renderToString(item.latex, {
    displayMode: !!item.display, throwOnError: true, strict: "error", output: "html",
    trust: false, maxExpand: 1000, maxSize: 100,
  });
}

async function renderPage(context, css, page, batch, opts) {
  const blocks = [];
  const drawn = [];
  for (const { i, item } of batch) {
    let html;
    try {
      html = typeset(item);
    } catch (err) {
      emit({ i, error: String(err && err.message ? err.message : err).split("\n")[0] });
      continue;
    }
    const style = `font-size:${Number(item.px)}px;color:${escapeHtml(item.color || "#000")};` +
      `background:${escapeHtml(item.background || "#fff")}`;
    blocks.push(`<div class="f" id="f${i}" style="${style}">${html}</div>`);
    drawn.push(i);
  }
  if (!drawn.length) return;
  const doc = `<!DOCTYPE html><html><head><meta charset="utf-8"><style>${css}
html,body{margin:0;padding:0;background:#fff}
body{display:flex;flex-wrap:wrap;align-items:flex-start;gap:${GAP}px;padding:${GAP}px}
.f{display:block;width:max-content;padding:${PAD}px;margin:0}
.f .katex-display{margin:0}
</style></head><body>${blocks.join("\n")}</body></html>`;
  await page.setContent(doc, { waitUntil: "load", timeout: opts.timeoutMs });
  const failed = await page.evaluate(async () => {
    await document.fonts.ready;
    return [...document.fonts].filter((f) => f.status === "error").map((f) => f.family);
  });
  if (failed.length) throw new Error(`KaTeX fonts did not load: ${[...new Set(failed)].join(", ")}`);
  // one screenshot of the whole page; each formula's element box is cut out of it by the caller
  const rects = await page.$$eval(".f", (els) => els.map((e) => {
    const r = e.getBoundingClientRect();
    return [Number(e.id.slice(1)), r.left + window.scrollX, r.top + window.scrollY, r.width, r.height];
  }));
  const file = path.join(opts.outDir, `page-${opts.pages++}.png`);
  await page.screenshot({ path: file, fullPage: true, animations: "disabled", caret: "hide",
                          timeout: opts.timeoutMs });
  emit({ page: file, items: rects.map(([i, x, y, w, h]) => ({ i, rect: [x, y, w, h] })) });
}

async function main() {
  const input = JSON.parse(fs.readFileSync(0, "utf8"));
  const opts = { outDir: input.outDir, timeoutMs: input.timeoutMs || 30000, pages: 0 };
  const pageSize = Math.max(1, input.pageSize || 40);
  const css = inlinedCss();
  const browser = await chromium.launch({
    executablePath: input.executable, headless: true, args: FLAGS, timeout: opts.timeoutMs,
  });
  try {
    const byScale = new Map();
    input.items.forEach((item, i) => {
      const s = Number(item.scale || 1);
      if (!byScale.has(s)) byScale.set(s, []);
      byScale.get(s).push({ i, item });
    });
    for (const [scale, entries] of byScale) {
      const context = await browser.newContext({
        deviceScaleFactor: scale, viewport: { width: 1600, height: 900 }, javaScriptEnabled: true,
        offline: true, colorScheme: "light", reducedMotion: "reduce",
      });
      const page = await context.newPage();
      for (let k = 0; k < entries.length; k += pageSize) {
        await renderPage(context, css, page, entries.slice(k, k + pageSize), opts);
      }
      await context.close();
    }
    emit({ done: true, katex: katex.version, browser: browser.version() });
  } finally {
    await browser.close();
  }
}

main().catch((err) => {
  emit({ fatal: String(err && err.stack ? err.stack : err) });
  process.exit(1);
});
