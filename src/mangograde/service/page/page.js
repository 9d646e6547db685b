"use strict";
// The grading page: uploads photos to /v1/grade (a few at a time), shows each photo's grade,
// its grade probabilities, and on request its heat map from /v1/explain. A photo the run is
// unsure of (below its abstain setting) is marked "check by hand", as `predict` labels it.
// "One fruit, several photos": the photos dropped together are one mango, graded as a fruit
// by the run's fruit rule (the `fruit` field of /v1/grade), each view shown with its own grade.
// With records, every graded photo or fruit can be corrected (a button per grade, or the keys
// 1, 2, 3... on the selected card; "Not a mango", key x, answers "reject": no grade at all):
// appended to the records by /v1/gradings/{id}/corrections, and shown at once. "To check by
// hand" lists the lot's photos marked check, worst first; "Find a photo of the lot" finds any
// of its photos by name from the records (/v1/lots/{lot}/gradings), after a reload too.
// "Close the lot" closes it in the operator's name (after a confirmation): the service then
// refuses gradings and corrections in it (409, naming who closed it and when).
const state = { grades: [], results: [], fruits: [], key: sessionStorage.getItem("mangograde-key") || "" };
const $ = (id) => document.getElementById(id);
const REJECT = "reject";  // the operator's answer for what is not a mango (never a grade)
const REJECT_KEY = "x";
const FIND_PAGE = 20;  // photos a page of "Find a photo of the lot"

function headers() { return state.key ? { "X-API-Key": state.key } : {}; }

async function call(path, options = {}) {
  const response = await fetch(path, { ...options, headers: { ...headers(), ...(options.headers || {}) } });
  if (response.status === 401) { $("key-box").hidden = false; }
  return response;
}

async function loadModel() {
  const response = await call("/v1/model");
  if (!response.ok) { $("model").textContent = "The model could not be read (" + response.status + ")."; return; }
  const info = await response.json();
  state.grades = info.grades;
  state.short = shortGrades(info.grades);
  state.explainsWith = info.explains_with;
  state.info = info;
  state.recording = Boolean(info.records);
  $("lot-box").hidden = !state.recording;
  $("operator-box").hidden = !state.recording;
  $("to-check-box").hidden = !state.recording;
  $("find-box").hidden = !state.recording;
  if (state.recording) { renderLot(); }
  renderHeadline();
  renderTally();
}

const percent = (x) => (100 * x).toFixed(1) + "%";

// The held-out accuracy of what is being graded: fruits in fruit mode, photos otherwise;
// the other figure beside it where the run has both.
function renderHeadline() {
  const info = state.info;
  if (!info) { return; }
  const photo = info.metrics.accuracy;
  const fruit = info.metrics.fruit_accuracy;
  const fruits = $("fruit-mode").checked;
  let accuracy = "";
  if (fruit !== undefined && photo !== undefined) {
    accuracy = fruits
      ? ", held-out accuracy " + percent(fruit) + " a fruit (" + percent(photo) + " a photo)"
      : ", held-out accuracy " + percent(photo) + " a photo (" + percent(fruit) + " a fruit)";
  } else if (photo !== undefined) {
    accuracy = ", held-out accuracy " + percent(photo) + " a photo";
  }
  $("model").textContent = "Run " + info.run + " (" + (info.preset || info.family) + accuracy + "); grades " + info.grades.join(" > ");
}

// Short grade names that stay distinct: words every grade shares are dropped
// (Extra_Class, Class_I, Class_II -> Extra, I, II); the full name is on hover.
function shortGrades(grades) {
  const words = grades.map((g) => g.split(/[_\s-]+/).filter(Boolean));
  const shared = words[0].filter((w) => words.every((ws) => ws.includes(w)));
  let short = words.map((ws, i) => ws.filter((w) => !shared.includes(w)).join(" ") || grades[i]);
  if (new Set(short).size !== grades.length) { short = grades.slice(); }
  return Object.fromEntries(grades.map((g, i) => [g, short[i]]));
}

function renderTally() {
  const tally = $("tally");
  tally.replaceChildren();
  for (const grade of state.grades) {
    const item = document.createElement("li");
    const n = state.results.filter((r) => standing(r) === grade && (r.corrected || !r.check)).length;
    item.textContent = grade + ": " + n;
    item.dataset.grade = grade;
    tally.append(item);
  }
  const rejects = state.results.filter((r) => r.corrected === REJECT).length;
  if (rejects) {
    const item = document.createElement("li");
    item.textContent = "not a mango: " + rejects;
    item.dataset.grade = REJECT;
    tally.append(item);
  }
  const unsure = state.results.filter((r) => r.check && !r.corrected).length;
  if (unsure) {
    const item = document.createElement("li");
    item.textContent = "check by hand: " + unsure;
    item.dataset.grade = "check";
    tally.append(item);
  }
  const graded = state.results.some((r) => r.grade);
  $("download").disabled = !graded;
  $("clear").disabled = state.results.length === 0;
}

function standing(result) { return result.corrected || result.grade; }

// -- corrections ---------------------------------------------------------------------------
// Each correction is a new row in the records; the page shows the grade that now stands.
async function sendCorrection(gradingId, grade) {
  const operator = $("operator").value.trim();
  const body = { grade: grade, ...(operator ? { operator: operator } : {}) };
  const response = await call("/v1/gradings/" + gradingId + "/corrections", {
    method: "POST", body: JSON.stringify(body), headers: { "Content-Type": "application/json" },
  });
  const answer = await response.json().catch(() => ({}));
  if (!response.ok) { throw new Error(answer.detail || ("error " + response.status)); }
  return answer;
}

function markCorrected(item, grade, who) {
  let line = item.querySelector(":scope > .corrected");
  if (!line) {
    line = document.createElement("p");
    line.className = "corrected";
    line.setAttribute("aria-live", "polite");
    item.querySelector(":scope > .corrections").before(line);
  }
  if (grade === REJECT) { line.textContent = "Not a mango" + (who ? ", said " + who : ""); }
  else { line.textContent = who ? "Corrected to " + grade + " by " + who : grade; }
  for (const button of item.querySelectorAll(":scope > .corrections button")) {
    button.setAttribute("aria-pressed", String(button.dataset.grade === grade));
  }
}

// results: the photo results the item stands for (one photo, or a fruit's photos).
async function correctItem(item, results, grade) {
  const ids = results.map((r) => r.grading_id).filter((id) => id !== undefined);
  if (!ids.length) { return; }
  try {
    let who = "";
    for (const id of ids) { who = (await sendCorrection(id, grade)).operator; }
    for (const r of results) { r.corrected = grade; }
    markCorrected(item, grade, who);
    renderTally();
    if (state.recording) { await renderLot(); }
  } catch (error) {
    markCorrected(item, "The correction was not kept: " + error.message, "");
  }
}

function correctionButtons(item, results) {
  if (!results.some((r) => r.grading_id !== undefined)) { return; }
  const row = document.createElement("div");
  row.className = "corrections";
  row.setAttribute("role", "group");
  row.setAttribute("aria-label", "Correct the grade");
  state.grades.forEach((grade, i) => {
    const button = document.createElement("button");
    button.type = "button";
    button.dataset.grade = grade;
    button.textContent = grade;
    button.title = "Grade " + grade + " (key " + (i + 1) + ")";
    button.setAttribute("aria-pressed", "false");
    button.addEventListener("click", () => correctItem(item, results, grade));
    row.append(button);
  });
  const reject = document.createElement("button");
  reject.type = "button";
  reject.className = "reject";
  reject.dataset.grade = REJECT;
  reject.textContent = "Not a mango";
  reject.title = "Not a mango: an empty cup, a leaf, a hand, another fruit; no grade (key " + REJECT_KEY + ")";
  reject.setAttribute("aria-pressed", "false");
  reject.addEventListener("click", () => correctItem(item, results, REJECT));
  row.append(reject);
  item.append(row);
  item.tabIndex = 0;
  item.correct = (grade) => correctItem(item, results, grade);
  item.addEventListener("focus", () => { state.selected = item; });
  item.addEventListener("click", () => { state.selected = item; });
}

async function loadToCheck() {
  const lot = lotName();
  const list = $("to-check");
  list.replaceChildren();
  const response = await call("/v1/lots/" + encodeURIComponent(lot) + "/to-check");
  const body = await response.json().catch(() => ({}));
  if (!response.ok) { $("to-check-status").textContent = "Lot " + lot + ": " + (body.detail || response.status); return; }
  $("to-check-status").textContent = "Lot " + lot + ": " + body.items.length + " photo" + (body.items.length === 1 ? "" : "s") + " to check.";
  for (const entry of body.items) {
    const status = entry.reason === "not-a-fruit" ? NOT_A_FRUIT
      : (entry.reason === "unfamiliar" ? "Unfamiliar: " : "Unsure: ") + entry.grade + " at "
      + (100 * entry.top_probability).toFixed(0) + "%";
    recordCard(list, entry, status, "status grade check");
  }
}

// A card for a grading the records hold (its kept photo, when there is one), with the
// correction buttons; entry: an item of /v1/lots/{lot}/to-check or /v1/lots/{lot}/gradings.
function recordCard(list, entry, statusText, statusClass) {
  const item = document.createElement("li");
  item.className = "photo";
  item.dataset.gradingId = entry.grading_id;
  const img = document.createElement("img");
  img.alt = "Photo " + entry.photo;
  if (entry.photo_url) {
    call(entry.photo_url).then((r) => (r.ok ? r.blob() : null)).then((blob) => {
      if (blob) { img.src = URL.createObjectURL(blob); } else { img.hidden = true; }
    });
  } else { img.hidden = true; }
  const name = document.createElement("p");
  name.className = "name";
  name.textContent = entry.photo + (entry.fruit ? " (fruit " + entry.fruit + ")" : "");
  const status = document.createElement("p");
  status.className = statusClass;
  status.textContent = statusText;
  item.append(img, name, status);
  bars(item, entry.probabilities);
  list.append(item);
  correctionButtons(item, [{ grading_id: entry.grading_id, grade: entry.grade }]);
  return item;
}

// -- find any photo of the lot -------------------------------------------------------------
// From the records, so it works after a reload: newest first, FIND_PAGE at a time.
async function findPhotos(more = false) {
  const lot = lotName();
  const list = $("found");
  const status = $("find-status");
  if (!more) { list.replaceChildren(); state.findOffset = 0; state.findSearch = $("find").value.trim(); }
  const query = new URLSearchParams({ limit: String(FIND_PAGE), offset: String(state.findOffset || 0) });
  if (state.findSearch) { query.set("search", state.findSearch); }
  const response = await call("/v1/lots/" + encodeURIComponent(lot) + "/gradings?" + query);
  const body = await response.json().catch(() => ({}));
  $("find-more").hidden = true;
  if (!response.ok) {
    const detail = Array.isArray(body.detail) ? body.detail.map((d) => d.msg).join("; ") : body.detail;
    status.textContent = "Lot " + lot + ": " + (detail || ("error " + response.status));
    return;
  }
  for (const entry of body.items) {
    const text = entry.corrected
      ? (entry.standing === REJECT ? "Not a mango" : "Now " + entry.standing) + " (the model said " + entry.grade + ")"
      : "Grade " + entry.grade + (entry.check ? " (marked check: " + (entry.reason || "unsure") + ")" : "");
    const item = recordCard(list, entry, text, entry.check && !entry.corrected ? "status grade check" : "status grade");
    if (entry.corrected) { markCorrected(item, entry.standing, entry.corrected_by || ""); }
  }
  state.findOffset = body.offset + body.items.length;
  const shown = list.children.length;
  status.textContent = "Lot " + lot + ": " + body.total + " photo" + (body.total === 1 ? "" : "s")
    + (state.findSearch ? " named like \u201c" + state.findSearch + "\u201d" : "")
    + (body.total ? ", " + shown + " shown." : ".");
  $("find-more").hidden = shown >= body.total;
}

function lotName() {
  return $("lot").value.trim() || "unassigned";
}

function withLot(form) {
  if (state.recording) { form.append("lot", lotName()); }
  return form;
}

// The lot's tally comes from the service's records: it survives a reload and a restart,
// and says what `lots show`, the report and the to-check list say (one summary).
async function renderLot() {
  const lot = lotName();
  const report = $("lot-report");
  report.href = "/v1/lots/" + encodeURIComponent(lot) + "/report";
  const response = await call("/v1/lots/" + encodeURIComponent(lot));
  const line = $("lot-tally");
  line.hidden = false;
  if (response.status === 404) {
    line.textContent = "Lot " + lot + ": nothing graded yet.";
    report.hidden = true;
    $("lot-close").hidden = true;
    return;
  }
  if (!response.ok) { line.textContent = "Lot " + lot + ": the records could not be read (" + response.status + ")."; return; }
  const tally = await response.json();
  const parts = Object.entries(tally.mix).map(([g, n]) => g + " " + n);
  const fruits = Object.entries(tally.fruit_mix || {}).map(([g, n]) => g + " " + n);
  const checks = tally.checks_left;
  line.textContent = "Lot " + tally.lot + ": "
    + (fruits.length ? tally.fruits + (tally.fruits === 1 ? " fruit (" : " fruits (") + fruits.join(", ") + "), " : "")
    + tally.gradings + " photos recorded (" + parts.join(", ")
    + (tally.rejects ? "; rejects " + tally.rejects + ", not mangoes" : "")
    + (checks ? "; left to check by hand " + checks : "") + ")"
    + (tally.closed_by ? "; closed by " + tally.closed_by + " at " + shownTime(tally.closed_at) : "");
  report.hidden = false;
  $("lot-close").hidden = Boolean(tally.closed_by);
}

// An ISO time from the service (UTC) in this browser's zone, the zone named.
function shownTime(iso) {
  return new Date(iso).toLocaleString([], {
    year: "numeric", month: "short", day: "numeric", hour: "2-digit", minute: "2-digit", timeZoneName: "short",
  });
}

async function closeLot() {
  const lot = lotName();
  const operator = $("operator").value.trim();
  const status = $("lot-close-status");
  if (!window.confirm("Close lot " + lot + (operator ? " as " + operator : "") + "? It will refuse "
      + "more gradings and corrections until it is reopened (mangograde lots reopen).")) { return; }
  const response = await call("/v1/lots/" + encodeURIComponent(lot) + "/close", {
    method: "POST", body: JSON.stringify(operator ? { operator: operator } : {}),
    headers: { "Content-Type": "application/json" },
  });
  const answer = await response.json().catch(() => ({}));
  status.hidden = false;
  status.textContent = response.ok
    ? "Lot " + lot + " closed by " + answer.operator + "."
    : "The lot was not closed: " + (answer.detail || ("error " + response.status));
  await renderLot();
}

function card(file, list = $("photos")) {
  const item = document.createElement("li");
  item.className = "photo";
  const img = document.createElement("img");
  img.src = URL.createObjectURL(file);
  img.alt = "Photo " + file.name;
  img.addEventListener("error", () => { img.hidden = true; });  // the browser cannot show it either
  const name = document.createElement("p");
  name.className = "name";
  name.textContent = file.name;
  const status = document.createElement("p");
  status.className = "status";
  status.setAttribute("aria-live", "polite");
  status.textContent = "Grading…";
  item.append(img, name, status);
  list.append(item);
  return item;
}

function bars(item, probabilities) {
  for (const grade of state.grades) {
    const p = probabilities[grade];
    const row = document.createElement("div");
    row.className = "bar";
    const label = document.createElement("span");
    label.textContent = state.short[grade] || grade;
    label.title = grade;
    const meter = document.createElement("meter");
    meter.min = 0; meter.max = 1; meter.value = p;
    meter.setAttribute("aria-label", "probability of " + grade);
    const value = document.createElement("span");
    value.textContent = (100 * p).toFixed(1) + "%";
    row.append(label, meter, value);
    item.append(row);
  }
}

const NOT_A_FRUIT = "Not a mango? Nothing like the run's training photos: check by hand";

function gradeText(result, what) {
  if (result.reason === "not-a-fruit") { return NOT_A_FRUIT; }  // never a grade, not even a guess
  return result.check
    ? "Check by hand (" + result.grade + " at " + (100 * result.probabilities[result.grade]).toFixed(0) + "%)"
    : what + result.grade;
}

function showDrift(body) {
  const drift = body && body.drift;
  // Answers to concurrent uploads arrive in any order: keep the latest window's status.
  if (!drift || drift.photos_seen < (state.driftSeen || 0)) { return; }
  state.driftSeen = drift.photos_seen;
  const banner = $("drift-banner");
  banner.hidden = !drift.drifting;
  if (drift.drifting) {
    banner.textContent = "The last " + drift.photos_in_window + " photos are very unlikely to come from the run's camera, "
      + "light and orchard: check them before trusting the grades (drift p = " + drift.drift_p.toPrecision(2) + ").";
  }
}

function showResult(item, result) {
  const status = item.querySelector(".status");
  if (result.error) {
    status.className = "status error";
    status.textContent = "Not graded: " + result.error;
    return;
  }
  status.className = result.check ? "status grade check" : "status grade";
  status.textContent = gradeText(result, "Grade ");
  item.dataset.grade = result.grade;
  if (result.unfamiliar) {
    const note = document.createElement("p");
    note.className = "unfamiliar";
    note.textContent = "Unlike the run's training photos";
    item.append(note);
  }
  if (result.reason !== "not-a-fruit") { bars(item, result.probabilities); }
  const why = document.createElement("button");
  why.type = "button";
  why.className = "why";
  why.textContent = "Why " + result.grade + "?";
  why.addEventListener("click", () => explainPhoto(item.file, result));
  if (result.reason !== "not-a-fruit") { item.append(why); }
  correctionButtons(item, [result]);
}

async function gradeFile(file) {
  const item = card(file);
  item.file = file;
  const form = withLot(new FormData());
  form.append("files", file, file.name);
  let result;
  try {
    const response = await call("/v1/grade", { method: "POST", body: form });
    const body = await response.json();
    showDrift(body);
    if (body.results) { result = body.results[0]; }
    else { result = { image_id: file.name, error: body.detail || ("error " + response.status) }; }
  } catch (error) {
    result = { image_id: file.name, error: "the service did not answer (" + error + ")" };
  }
  state.results.push(result);
  showResult(item, result);
  renderTally();
  if (state.recording) { await renderLot(); }
}

async function gradeFruit(files) {
  const name = $("fruit-name").value.trim() || "fruit-" + (state.fruits.length + 1);
  $("fruit-name").value = "";
  $("fruits-box").hidden = false;
  const box = document.createElement("li");
  box.className = "fruit";
  const title = document.createElement("h3");
  title.textContent = "Fruit " + name + " (" + files.length + " photo" + (files.length === 1 ? "" : "s") + ")";
  const status = document.createElement("p");
  status.className = "status";
  status.setAttribute("aria-live", "polite");
  status.textContent = "Grading…";
  const views = document.createElement("ol");
  views.className = "views";
  box.append(title, status, views);
  $("fruits").prepend(box);
  const items = files.map((file) => { const item = card(file, views); item.file = file; return item; });
  const form = withLot(new FormData());
  for (const file of files) { form.append("files", file, file.name); }
  form.append("fruit", name);
  let body = {};
  try {
    const response = await call("/v1/grade", { method: "POST", body: form });
    body = await response.json();
    showDrift(body);
    if (!body.results) { body = { error: body.detail || ("error " + response.status) }; }
  } catch (error) {
    body = { error: "the service did not answer (" + error + ")" };
  }
  const results = body.results || files.map((f) => ({ image_id: f.name, error: body.error }));
  results.forEach((result, i) => {
    result.fruit = name;
    state.results.push(result);
    showResult(items[i], result);
  });
  const fruit = (body.fruits || [])[0];
  if (fruit) {
    state.fruits.push(fruit);
    status.className = fruit.check ? "status grade check" : "status grade";
    status.textContent = gradeText(fruit, "Fruit grade ");
    bars(status.parentElement.insertBefore(document.createElement("div"), views), fruit.probabilities);
    const photos = results.filter((r) => r.grading_id !== undefined);
    const tools = document.createElement("div");
    box.insertBefore(tools, views);
    correctionButtons(tools, photos);
    tools.tabIndex = -1;
    box.tabIndex = 0;
    box.correct = tools.correct;
    box.addEventListener("focus", () => { state.selected = box; });
  } else {
    status.className = "status error";
    status.textContent = "Not graded: " + (body.error || "no photo of it could be read");
  }
  renderTally();
  if (state.recording) { await renderLot(); }
}

async function gradeAll(files) {
  if ($("fruit-mode").checked) { await gradeFruit(Array.from(files)); return; }
  const queue = Array.from(files);
  const lanes = Array.from({ length: Math.min(4, queue.length) }, async () => {
    while (queue.length) { await gradeFile(queue.shift()); }
  });
  await Promise.all(lanes);
}

async function explainPhoto(file, result) {
  const dialog = $("heat");
  $("heat-title").textContent = "Why " + result.image_id + " is " + result.grade;
  $("heat-status").textContent = "Working out the heat map…";
  $("heat-image").removeAttribute("src");
  $("heat-image").alt = "";
  dialog.showModal();
  const form = new FormData();
  form.append("files", file, file.name);
  const response = await call("/v1/explain", { method: "POST", body: form });
  if (!response.ok) {
    const body = await response.json().catch(() => ({}));
    $("heat-status").textContent = "No heat map: " + (body.detail || response.status);
    return;
  }
  const blob = await response.blob();
  $("heat-image").src = URL.createObjectURL(blob);
  const caption = decodeURIComponent(response.headers.get("X-Explanation") || "");
  $("heat-image").alt = "Heat map of " + result.image_id + ". " + caption;
  $("heat-status").textContent = caption + ".";
}

function quoted(text) {
  return /[",\n]/.test(text) ? '"' + text.replace(/"/g, '""') + '"' : text;
}

function downloadCsv() {
  const fruits = state.results.some((r) => r.fruit);
  const rows = state.results.filter((r) => r.grade).map((r) =>
    quoted(r.image_id) + "," + (r.corrected || (r.check ? "check" : r.grade)) + (fruits ? "," + quoted(r.fruit || "") : ""));
  const header = fruits ? "image_id,label,fruit" : "image_id,label";
  const blob = new Blob([header + "\n" + rows.join("\n") + "\n"], { type: "text/csv" });
  const link = document.createElement("a");
  link.href = URL.createObjectURL(blob);
  link.download = "grades.csv";
  document.body.append(link);
  link.click();
  link.remove();
}

function setUp() {
  const drop = $("drop");
  drop.addEventListener("dragover", (e) => { e.preventDefault(); drop.classList.add("over"); });
  drop.addEventListener("dragleave", () => drop.classList.remove("over"));
  drop.addEventListener("drop", (e) => { e.preventDefault(); drop.classList.remove("over"); gradeAll(e.dataTransfer.files); });
  for (const id of ["pick", "camera"]) {
    $(id).addEventListener("change", (e) => { gradeAll(e.target.files); e.target.value = ""; });
  }
  $("download").addEventListener("click", downloadCsv);
  $("clear").addEventListener("click", () => {
    state.results = []; state.fruits = [];
    $("photos").replaceChildren(); $("fruits").replaceChildren(); $("fruits-box").hidden = true;
    renderTally();
  });
  $("lot").value = localStorage.getItem("mangograde-lot") || "";
  $("lot").addEventListener("change", () => {
    localStorage.setItem("mangograde-lot", $("lot").value.trim());
    $("lot-close-status").hidden = true;
    if (state.recording) { renderLot(); }
  });
  $("operator").value = localStorage.getItem("mangograde-operator") || "";
  $("operator").addEventListener("change", () => localStorage.setItem("mangograde-operator", $("operator").value.trim()));
  $("to-check-load").addEventListener("click", loadToCheck);
  $("find-form").addEventListener("submit", (e) => { e.preventDefault(); findPhotos(); });
  $("find-more").addEventListener("click", () => findPhotos(true));
  $("lot-close").addEventListener("click", closeLot);
  document.addEventListener("keydown", (e) => {
    const target = e.target;
    if (target instanceof HTMLInputElement || e.altKey || e.ctrlKey || e.metaKey) { return; }
    const n = Number(e.key);
    const chosen = state.selected && document.contains(state.selected) ? state.selected : null;
    if (!chosen || !chosen.correct) { return; }
    if (e.key.toLowerCase() === REJECT_KEY) { e.preventDefault(); chosen.correct(REJECT); return; }
    if (!Number.isInteger(n) || n < 1 || n > state.grades.length) { return; }
    e.preventDefault();
    chosen.correct(state.grades[n - 1]);
  });
  $("fruit-mode").addEventListener("change", (e) => {
    $("fruit-name").disabled = !e.target.checked;
    renderHeadline();
  });
  $("key-save").addEventListener("click", () => {
    state.key = $("key").value;
    sessionStorage.setItem("mangograde-key", state.key);
    $("key-box").hidden = true;
    loadModel();
  });
  loadModel();
}

document.addEventListener("DOMContentLoaded", setUp);
