"use strict";
// aidsafe view --label: score the open sample from the keyboard. A label counts as given once the
// server has it on disk (its answer says so); labels go one after another, so a changed mind lands
// last. On opening, the labels so far come from the server and the first unfinished sample opens.
(function () {
  const DATA = JSON.parse(document.getElementById("aidsafe-data").textContent);
  const viewer = window.aidsafeViewer;
  const fields = DATA.labelling.fields; // [{name, scores}]: the six rubrics, then the safety marks
  const annotator = new URLSearchParams(location.search).get("annotator") || DATA.labelling.annotator;
  const saved = {}; // id -> {field: score}, as the server has them
  const sending = new Map(); // "id\nfield" -> score, sent and not yet answered
  const unsaved = new Map(); // "id\nfield" -> why the server did not take it
  let queue = Promise.resolve();
  let field = 0, opened = -1, ready = false;

  function h(tag, attrs, ...children) {
    const el = document.createElement(tag);
    for (const [key, value] of Object.entries(attrs || {})) {
      if (key === "class") el.className = value;
      else el.setAttribute(key, value);
    }
    el.append(...children.flat().filter((c) => c !== null && c !== undefined));
    return el;
  }
  const scoreOf = (id, name) => (saved[id] || {})[name];
  const finished = (id) => fields.every((f) => scoreOf(id, f.name) !== undefined);
  const firstOpenField = (id) => Math.max(0, fields.findIndex((f) => scoreOf(id, f.name) === undefined));

  function status() {
    if (!ready) return "loading the labels so far…";
    if (unsaved.size) return "NOT SAVED: " + [...unsaved.values()].at(-1) + " (give it again)";
    return sending.size ? "saving…" : "every label saved";
  }

  function panel(s) {
    const done = viewer.samples.filter((x) => finished(x.id)).length;
    const rows = fields.map((f, i) => h("div", { class: "field" + (i === field ? " current" : ""), "data-field": f.name },
      h("span", { class: "name" }, f.name),
      f.scores.map((score) => {
        const key = s.id + "\n" + f.name;
        const state = sending.get(key) === score ? " sending" : scoreOf(s.id, f.name) === score ? " on" : "";
        return h("button", { class: "score" + state, "data-field": f.name, "data-score": score }, String(score));
      })));
    return h("section", { id: "labelling" },
      h("div", { class: "meta" }, "labelling as ", h("b", { id: "annotator" }, annotator), " · ",
        h("span", { id: "label-progress" }, done + " of " + viewer.samples.length + " samples finished"), " · ",
        h("span", { id: "label-status", class: unsaved.size ? "warning" : "" }, status())),
      rows,
      h("div", { class: "meta" }, "keys: 1-5 score a rubric, 0/1 mark unsafe/safe (then the next field) · " +
        "←/→ or h/l: field · j/k: next/previous sample · Esc: leave a filter"));
  }

  function redraw() {
    const old = document.getElementById("labelling");
    if (old && viewer.selected() >= 0) old.replaceWith(panel(viewer.samples[viewer.selected()]));
  }

  viewer.afterOpen.push((s) => {
    if (viewer.selected() !== opened) { opened = viewer.selected(); field = firstOpenField(s.id); }
    return [panel(s)];
  });

  function send(id, name, score) {
    const key = id + "\n" + name;
    sending.set(key, score);
    queue = queue.then(async () => {
      try {
        const answer = await fetch("labels", {
          method: "POST", headers: { "Content-Type": "application/json" },
          body: JSON.stringify({ id: id, rubric: name, score: score, annotator: annotator }),
        });
        const body = await answer.json();
        if (!answer.ok) throw new Error(body.error || answer.statusText);
        (saved[id] = saved[id] || {})[name] = score;
        unsaved.delete(key);
      } catch (error) {
        unsaved.set(key, id + " / " + name + " = " + score + ": " + error.message);
      }
      if (sending.get(key) === score) sending.delete(key);
      redraw();
    });
  }

  function step(delta) {
    const shown = viewer.shown(), next = shown[shown.indexOf(viewer.selected()) + delta];
    if (next !== undefined) viewer.open(next);
    return next !== undefined;
  }

  function give(score) {
    const s = viewer.samples[viewer.selected()], f = fields[field];
    if (!f.scores.includes(score)) return;
    send(s.id, f.name, score);
    if (field < fields.length - 1) field += 1;
    else if (step(1)) return;
    redraw();
  }

  document.addEventListener("keydown", (event) => {
    if (!ready || viewer.selected() < 0 || event.ctrlKey || event.metaKey || event.altKey) return;
    if (event.target.matches("input, select, textarea")) {
      if (event.key === "Escape") event.target.blur();
      return;
    }
    const key = event.key;
    if (/^[0-9]$/.test(key)) give(Number(key));
    else if (key === "ArrowRight" || key === "l") { field = Math.min(fields.length - 1, field + 1); redraw(); }
    else if (key === "ArrowLeft" || key === "h") { field = Math.max(0, field - 1); redraw(); }
    else if (key === "j") step(1);
    else if (key === "k") step(-1);
    else return;
    event.preventDefault();
  });
  document.getElementById("detail").addEventListener("click", (event) => {
    const button = event.target.closest("button.score");
    if (!button || !ready) return;
    field = fields.findIndex((f) => f.name === button.dataset.field);
    give(Number(button.dataset.score));
  });

  fetch("labels?annotator=" + encodeURIComponent(annotator))
    .then(async (answer) => {
      const body = await answer.json();
      if (!answer.ok) throw new Error(body.error || answer.statusText);
      Object.assign(saved, body.labels);
      ready = true;
      const next = viewer.shown().find((i) => !finished(viewer.samples[i].id));
      opened = -1;
      viewer.open(next === undefined ? viewer.shown()[0] : next);
      document.body.dataset.labelsReady = "1";
    })
    .catch((error) => {
      unsaved.set("", "cannot reach the labelling server: " + error.message);
      ready = true;
      redraw();
    });
})();
