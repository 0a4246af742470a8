"use strict";
// aidsafe view: the samples come from the JSON block above. Only the rows in sight are in the
// page (the list is virtual); a sample's detail is built when it is opened. Model text is only
// ever set as text, never parsed as HTML.
(function () {
  const DATA = JSON.parse(document.getElementById("aidsafe-data").textContent);
  const samples = DATA.samples;
  const ROW_HEIGHT = 58;
  const $ = (id) => document.getElementById(id);
  const list = $("list"), spacer = $("spacer"), detail = $("detail");
  let shown = samples.map((_, i) => i);
  let selected = -1;
  let haystacks = null;
  const afterOpen = []; // what labelling.js adds to a sample's detail

  function h(tag, attrs, ...children) {
    const el = document.createElement(tag);
    for (const [key, value] of Object.entries(attrs || {})) {
      if (key === "class") el.className = value;
      else el.setAttribute(key, value);
    }
    for (const child of children.flat()) {
      if (child === null || child === undefined || child === false) continue;
      el.append(child instanceof Node ? child : String(child));
    }
    return el;
  }
  const badge = (text, cls) => h("span", { class: "badge " + (cls || text) }, text);

  // ---- filters
  function fillSelect(select, values) {
    for (const value of [...values].sort()) select.append(h("option", { value: value }, value));
  }
  fillSelect($("f-kind"), new Set(samples.map((s) => s.kind)));
  fillSelect($("f-stop"), new Set(samples.map((s) => s.stop)));
  fillSelect($("f-policy"), new Set(samples.flatMap((s) => s.policies)));
  fillSelect($("f-score"), new Set(samples.flatMap((s) => Object.keys(s.scores))));
  if (DATA.bad_lines.length) {
    $("problems").textContent = DATA.bad_lines.length + " unusable lines: " + DATA.bad_lines.slice(0, 3).join("; ");
  }

  function haystack(sample) {
    const r = sample.record;
    const parts = [sample.id, r.prompt || "", r.response || "", r.belief || ""];
    for (const side of [r, r.chosen, r.rejected]) {
      if (side && side.thoughts) for (const t of side.thoughts) parts.push(typeof t === "string" ? t : t.text);
      if (side && side.response) parts.push(side.response);
    }
    if (r.error) parts.push(JSON.stringify(r.error));
    return parts.join("\n").toLowerCase();
  }

  function applyFilters() {
    const kind = $("f-kind").value, stop = $("f-stop").value, policy = $("f-policy").value;
    const failed = $("f-failed").checked, refused = $("f-refused").checked;
    const score = $("f-score").value;
    const min = $("f-min").value === "" ? -Infinity : Number($("f-min").value);
    const max = $("f-max").value === "" ? Infinity : Number($("f-max").value);
    const query = $("search").value.trim().toLowerCase();
    if (query && haystacks === null) haystacks = samples.map(haystack);
    shown = [];
    for (let i = 0; i < samples.length; i++) {
      const s = samples[i];
      if (kind && s.kind !== kind) continue;
      if (stop && s.stop !== stop) continue;
      if (policy && !s.policies.includes(policy)) continue;
      if (failed && !s.failed) continue;
      if (refused && !s.refused) continue;
      if (score) {
        const value = s.scores[score];
        if (value === undefined || value < min || value > max) continue;
      }
      if (query && !haystacks[i].includes(query)) continue;
      shown.push(i);
    }
    $("count").textContent = shown.length + " of " + samples.length + " samples";
    spacer.style.height = shown.length * ROW_HEIGHT + "px";
    list.scrollTop = 0;
    renderRows();
  }

  // ---- the virtual list: only rows in sight exist in the page
  function renderRows() {
    const first = Math.max(0, Math.floor(list.scrollTop / ROW_HEIGHT) - 5);
    const last = Math.min(shown.length, first + Math.ceil(list.clientHeight / ROW_HEIGHT) + 10);
    const rows = [];
    for (let position = first; position < last; position++) {
      const index = shown[position];
      const s = samples[index];
      const prompt = s.record.prompt || (s.record.error ? s.record.error.message : "");
      const row = h(
        "div",
        { class: "row" + (index === selected ? " selected" : ""), "data-index": index },
        h("div", { class: "top" }, h("span", { class: "id" }, s.id), badge(s.kind, "kind"), badge(s.stop),
          s.failed ? badge("failed") : null, s.refused ? badge("refused") : null),
        h("div", { class: "prompt" }, prompt.slice(0, 160))
      );
      row.style.top = position * ROW_HEIGHT + "px";
      rows.push(row);
    }
    spacer.replaceChildren(...rows);
  }
  let scheduled = false;
  list.addEventListener("scroll", () => {
    if (scheduled) return;
    scheduled = true;
    requestAnimationFrame(() => { scheduled = false; renderRows(); });
  });
  spacer.addEventListener("click", (event) => {
    const row = event.target.closest(".row");
    if (row) open(Number(row.dataset.index));
  });

  // ---- the detail of one sample
  function policyTags(ids) { return (ids || []).map((id) => badge(id, "policy")); }

  function thoughtView(t, removedBy) {
    const removal = removedBy.get(t.id);
    return h("div", { class: "thought" + (removal ? " gone" : "") },
      h("span", { class: "tid" }, "#" + t.id), t.text, " ", policyTags(t.policy_ids),
      t.corrects !== null && t.corrects !== undefined ? badge("corrects #" + t.corrects, "correction") : null,
      removal ? badge("removed: " + removal.reason, "removed") : null);
  }

  function deliberation(r) {
    const removedBy = new Map((r.removed_thoughts || []).map((x) => [x.thought.id, x]));
    const byId = new Map();
    for (const t of r.thoughts || []) byId.set(t.id, t);
    for (const x of r.removed_thoughts || []) byId.set(x.thought.id, x.thought);
    const all = [...byId.values()].sort((a, b) => a.id - b.id);
    const out = [h("h2", {}, "Request"), h("div", { class: "box" }, r.prompt)];
    if (r.intents) {
      out.push(h("h2", {}, "Intents"),
        h("div", { class: "box" }, h("b", {}, "explicit: "), (r.intents.explicit || []).join("; ") || "none", "\n",
          h("b", {}, "implicit: "), (r.intents.implicit || []).join("; ") || "none"));
    }
    const seeds = all.filter((t) => t.round === 0);
    if (seeds.length) {
      out.push(h("h2", {}, "Initial thoughts"),
        h("div", { class: "turn" }, h("div", { class: "meta" }, seeds[0].agent), seeds.map((t) => thoughtView(t, removedBy))));
    }
    const turns = r.deliberation_log || [];
    if (turns.length) out.push(h("h2", {}, "Deliberation (" + r.rounds + " rounds, stop: " + r.stop_reason + ")"));
    for (const turn of turns) {
      const added = (turn.added_thoughts || []).map((id) => byId.get(id)).filter(Boolean);
      out.push(h("div", { class: "turn" + (turn.agreed ? " agreed" : "") },
        h("div", { class: "meta" }, "round " + turn.round + " · " + turn.agent + " ",
          turn.agreed ? badge("agreed") : null, added.length ? "" : " (no new thoughts)"),
        added.map((t) => thoughtView(t, removedBy)),
        turn.updated_response ? h("div", { class: "change" }, h("b", {}, "response changed to: "), turn.updated_response) : null));
    }
    if ((r.removed_thoughts || []).length) {
      out.push(h("h2", {}, "Refiner removals"),
        h("table", {}, h("tr", {}, h("th", {}, "thought"), h("th", {}, "reason"), h("th", {}, "explanation")),
          r.removed_thoughts.map((x) => h("tr", {}, h("td", {}, "#" + x.thought.id + " " + x.thought.text),
            h("td", {}, badge(x.reason, "removed")), h("td", {}, x.explanation)))));
    }
    if (r.revision) out.push(...revisionView(r.revision));
    out.push(h("h2", {}, "Final chain of thought"),
      h("div", {}, (r.thoughts || []).map((t) => thoughtView(t, new Map()))),
      h("h2", {}, "Final response"), h("div", { class: "box" }, r.response));
    return out;
  }

  // A record of `aidsafe revise`: where it came from, and the thoughts the new policies superseded,
  // shown apart from the chain of thought (they are not in it).
  function revisionView(v) {
    const out = [h("h2", {}, "Revision: " + v.outcome + " (from policy set " + v.from_policy_set + ")"),
      h("div", { class: "meta" }, v.checked)];
    if ((v.kept_thoughts || []).length) {
      out.push(h("div", { class: "meta" }, "kept thoughts (old id → new id): " +
        v.kept_thoughts.map((k) => "#" + k.from + "→#" + k.to).join(", ")));
    }
    if ((v.superseded || []).length) {
      out.push(h("h3", {}, "Superseded thoughts"), h("div", { class: "superseded" }, v.superseded.map((x) =>
        h("div", { class: "thought gone" }, h("span", { class: "tid" }, "#" + x.thought.id), x.thought.text, " ",
          policyTags(x.thought.policy_ids),
          (x.because || []).map((c) => h("div", { class: "change" }, c.policy_id + ": " + c.status +
            (c.kind ? " " + c.kind + " clause" : "") + (c.old ? ": was “" + c.old + "”" : "") +
            (c.new ? ", now “" + c.new + "”" : "")))))));
    }
    if (v.triage) out.push(h("div", { class: "meta" }, "triage asked about " + (v.triage.asked.join(", ") || "nothing") +
      "; applies: " + (v.triage.applies.join(", ") || "none")));
    return out;
  }

  function sideView(side, title, cls, score) {
    return h("section", { class: cls }, h("h3", {}, title + " (violation score " + score + ")"),
      side.thoughts.map((t, i) => h("div", { class: "thought" }, h("span", { class: "tid" }, String(i + 1)), t.text, " ",
        policyTags(t.policy_ids))),
      h("div", { class: "box" }, side.response));
  }

  function preference(r) {
    return [
      h("h2", {}, "Request"), h("div", { class: "box" }, r.prompt),
      h("p", { class: "warning" }, "The rejected side is harmful by design: a negative example for preference training, never training or display text."),
      h("p", {}, h("b", {}, "Belief whispered to the generator: "), r.belief, h("span", { class: "meta" }, "  (" + r.iterations + " iterations)")),
      h("div", { class: "pair" }, sideView(r.chosen, "Chosen", "side-chosen", r.chosen_score),
        sideView(r.rejected, "Rejected (harmful by design)", "side-rejected", r.rejected_score)),
    ];
  }

  function grades(s) {
    const out = [];
    if (s.grades && Object.keys(s.grades).length) {
      out.push(h("h2", {}, "Grades"),
        h("table", {}, h("tr", {}, h("th", {}, "rubric"), h("th", {}, "score"), h("th", {}, "justification")),
          Object.entries(s.grades).map(([name, g]) => h("tr", {}, h("td", {}, name), h("td", {}, g.score), h("td", {}, g.justification)))));
    }
    if (s.pairwise) out.push(h("p", {}, h("b", {}, "Pairwise against the baseline: "), s.pairwise.verdict, " — ", s.pairwise.justification));
    for (const f of s.grade_failures || []) out.push(h("p", { class: "warning" }, "grade failed: " + f.check + ": " + f.message));
    return out;
  }

  function header(s) {
    const r = s.record;
    const facts = [s.where];
    if (r.model) facts.push("model " + r.model);
    if (r.policy_set) facts.push("policy set " + r.policy_set);
    if (r.usage) facts.push(r.usage.llm_calls + " calls, " + r.usage.input_tokens + " in / " + r.usage.output_tokens + " out tokens");
    if (r.cost_usd !== undefined && r.cost_usd !== null) facts.push("$" + r.cost_usd.toFixed(4));
    return [h("h1", {}, s.id, " ", badge(s.kind, "kind"), " ", badge(s.stop), s.failed ? badge("failed") : null,
      s.refused ? badge("refused") : null), h("div", { class: "meta" }, facts.join(" · "))];
  }

  function open(index) {
    selected = index;
    const s = samples[index], r = s.record;
    let body;
    if (s.kind === "preference") body = preference(r);
    else if (s.kind === "error") body = [h("h2", {}, "Failed in " + r.error.node), h("div", { class: "box" }, r.error.message),
      r.prompt ? [h("h2", {}, "Request"), h("div", { class: "box" }, r.prompt)] : null];
    else if (s.kind === "evaluation") body = [];
    else body = deliberation(r);
    if (r.safety && !DATA.labelling) body.push(h("p", { class: r.safety.flagged ? "warning" : "" }, "safety gate: violation " + r.safety.score + (r.safety.flagged ? " (flagged: left out of SFT export)" : "")));
    detail.replaceChildren(...afterOpen.flatMap((add) => add(s)), ...header(s), ...body, ...grades(s));
    detail.scrollTop = 0;
    const position = shown.indexOf(index); // keep the open sample's row in sight
    if (position >= 0 && (position * ROW_HEIGHT < list.scrollTop || (position + 1) * ROW_HEIGHT > list.scrollTop + list.clientHeight)) {
      list.scrollTop = Math.max(0, position * ROW_HEIGHT - list.clientHeight / 2);
    }
    renderRows();
  }

  let timer = null;
  $("search").addEventListener("input", () => { clearTimeout(timer); timer = setTimeout(applyFilters, 120); });
  for (const id of ["f-kind", "f-stop", "f-policy", "f-failed", "f-refused", "f-score", "f-min", "f-max"]) {
    $(id).addEventListener("change", applyFilters);
  }
  applyFilters();
  if (shown.length) open(shown[0]);
  // For labelling.js: open a sample, the samples in the list's order, the one open.
  window.aidsafeViewer = { samples, open, afterOpen, shown: () => shown, selected: () => selected };
  document.body.dataset.ready = "1";
})();
