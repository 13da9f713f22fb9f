/* lawful cookie banner: one script tag, no dependencies.
 *
 *   <script src="https://LAWFUL/v1/consent/banner.js" data-site="shop.example" defer></script>
 *   <a href="#" data-lawful-consent-open>Cookie settings</a>
 *
 * Shows the manifest's cookie purposes in the visitor's language, with "Accept all" and
 * "Reject all" equally prominent; stores the choice with its audit id in localStorage and
 * posts it to lawful's consent ledger. window.lawfulConsent.open() reopens it;
 * window.lawfulConsent.allowed(purpose) tells the page what it may load: only what the
 * visitor granted, under the current text, and the ledger acknowledged.
 * Events on document: "lawful:ready" once the purposes are loaded, "lawful:consent" (detail:
 * the stored choice) once the ledger has answered a choice.
 */
(function () {
  "use strict";
  var script = document.currentScript;
  var base = new URL(script.src).origin;
  var site = script.getAttribute("data-site") || location.hostname;
  var only = (script.getAttribute("data-purposes") || "").split(",").filter(Boolean);
  var KEY = "lawful-consent:" + site;
  var WORDS = {
    en: { title: "Your privacy choices", accept: "Accept all", reject: "Reject all",
          save: "Save my choices", intro: "Choose what we may use. You can change this at any time." },
    nl: { title: "Uw privacykeuzes", accept: "Alles accepteren", reject: "Alles weigeren",
          save: "Mijn keuzes opslaan", intro: "Kies wat wij mogen gebruiken. U kunt dit altijd wijzigen." },
    de: { title: "Ihre Datenschutzeinstellungen", accept: "Alle akzeptieren", reject: "Alle ablehnen",
          save: "Auswahl speichern", intro: "Wählen Sie, was wir verwenden dürfen. Sie können das jederzeit ändern." },
    fr: { title: "Vos choix de confidentialité", accept: "Tout accepter", reject: "Tout refuser",
          save: "Enregistrer mes choix", intro: "Choisissez ce que nous pouvons utiliser. Vous pouvez changer d'avis à tout moment." }
  };
  var asked = navigator.language || "en";  // as the browser says it: "nl-BE"
  var lang = asked.toLowerCase();
  var wordsLang = WORDS[lang] ? lang : WORDS[lang.split("-")[0]] ? lang.split("-")[0] : "en";
  var words = WORDS[wordsLang];
  var purposes = [];
  var ready = false, wanted = false;
  var box = null, opener = null;

  function uuid() {
    if (window.crypto && crypto.randomUUID) return crypto.randomUUID();
    return "v" + Date.now().toString(36) + Math.random().toString(36).slice(2, 12);
  }
  function load() {
    try { return JSON.parse(localStorage.getItem(KEY) || "null"); } catch (e) { return null; }
  }
  function keep(record) {
    try { localStorage.setItem(KEY, JSON.stringify(record)); } catch (e) { /* private mode */ }
  }
  function current(saved) {
    return !!saved && purposes.every(function (p) {
      return saved.versions && saved.versions[p.id] === p.version;
    });
  }
  function allowed(id) {
    var saved = load();
    return !!(ready && saved && !saved.pending && saved.choices && saved.choices[id] &&
              current(saved));
  }

  function save(choices) {
    var saved = load() || {};
    var record = {
      visitor_id: saved.visitor_id || uuid(), audit_id: uuid(), choices: choices,
      versions: {}, language: shownIn(), at: new Date().toISOString(), pending: true
    };
    purposes.forEach(function (p) { record.versions[p.id] = p.version; });
    keep(record);
    close();
    return post(record);
  }

  // Posted with the audit id as client_event_id, so a resend is stored once. Until the ledger
  // acknowledges, the choice is "pending": nothing is allowed, and the next page view resends.
  function post(record) {
    return fetch(base + "/v1/consent/choices", {
      method: "POST", headers: { "Content-Type": "application/json" }, keepalive: true,
      body: JSON.stringify({
        visitor_id: record.visitor_id, audit_id: record.audit_id, choices: record.choices,
        versions: record.versions, language: record.language, site: site,
        client_event_id: record.audit_id
      })
    }).then(function (r) {
      if (r.ok) {
        return r.json().then(function (events) {
          // The ledger's answer is the choice: under Global Privacy Control a grant of a
          // purpose marked as sale, sharing or advertising is recorded as denied.
          events.forEach(function (e) { record.choices[e.purpose] = e.action === "granted"; });
          record.pending = false;
        });
      }
      if (r.status < 500 && r.status !== 429 && r.status !== 408) {
        // Refused (a text that changed meanwhile): not a choice; the banner asks again.
        record.pending = false; record.versions = {};
      }
    }).catch(function () { /* offline: stays pending, resent on the next page view */ })
      .then(function () {
        var now = load();
        if (now && now.audit_id === record.audit_id) keep(record);
        document.dispatchEvent(new CustomEvent("lawful:consent", { detail: record }));
      });
  }

  function close() {
    if (!box) return;
    var back = box.contains(document.activeElement) && opener;
    box.remove(); box = null; opener = null;
    if (back && document.contains(back)) back.focus();
  }

  function el(tag, attrs, text) {
    var node = document.createElement(tag);
    Object.keys(attrs || {}).forEach(function (k) { node.setAttribute(k, attrs[k]); });
    if (text) node.textContent = text;
    return node;
  }

  function open(from) {
    if (!ready) { wanted = true; return; }  // opened from the link before the purposes came
    if (!purposes.length) return;
    var returnTo = from || (box && opener) || null;
    close();
    opener = returnTo;
    var saved = load();
    box = el("div", { role: "dialog", "aria-modal": "false", "aria-labelledby": "lawful-title",
                      id: "lawful-banner", lang: wordsLang, tabindex: "-1" });
    box.style.cssText = "position:fixed;left:0;right:0;bottom:0;z-index:2147483647;" +
      "max-height:100vh;overflow:auto;box-sizing:border-box;outline:none;" +
      "background:#fff;color:#111;border-top:2px solid #333;padding:16px;text-align:left;" +
      "font:15px/1.4 system-ui,sans-serif;box-shadow:0 -2px 12px rgba(0,0,0,.2)";
    // A focus ring that shows against the dark buttons (WCAG 2.4.7); :focus-visible cannot be
    // an inline style.
    box.appendChild(el("style", {}, "#lawful-banner :focus-visible{outline:3px solid #0b57d0;" +
                                    "outline-offset:2px}"));
    box.appendChild(el("h2", { id: "lawful-title",
                               style: "margin:0 0 6px;font:inherit;font-size:18px;font-weight:700" },
                       words.title));
    box.appendChild(el("p", { style: "margin:0 0 8px" }, words.intro));
    purposes.forEach(function (p) {
      var label = el("label", { style: "display:block;margin:4px 0", lang: p.language || "en" });
      var tick = el("input", { type: "checkbox", name: p.id, "data-purpose": p.id });
      tick.checked = !!(saved && saved.choices && saved.choices[p.id]);
      label.appendChild(tick);
      label.appendChild(document.createTextNode(" " + p.name + ": " + (p.text || "")));
      box.appendChild(label);
    });
    var row = el("div", { style: "display:flex;gap:12px;flex-wrap:wrap;margin-top:10px" });
    // Accept and reject look the same: same size, same colours, same weight.
    var style = "flex:1 1 160px;margin:0;padding:10px 16px;font:inherit;font-weight:600;" +
      "border:2px solid #333;background:#333;color:#fff;border-radius:4px;cursor:pointer";
    var reject = el("button", { type: "button", "data-action": "reject", style: style },
                    words.reject);
    var accept = el("button", { type: "button", "data-action": "accept", style: style },
                    words.accept);
    var chosen = el("button", { type: "button", "data-action": "save", style: style },
                    words.save);
    reject.onclick = function () { save(all(false)); };
    accept.onclick = function () { save(all(true)); };
    chosen.onclick = function () {
      var choices = {};
      box.querySelectorAll("input[data-purpose]").forEach(function (i) {
        choices[i.getAttribute("data-purpose")] = i.checked;
      });
      save(choices);
    };
    // Escape closes a reopened banner unchanged; a first one waits for an answer.
    box.onkeydown = function (event) {
      if (event.key === "Escape" && current(saved)) close();
    };
    row.appendChild(reject); row.appendChild(accept); row.appendChild(chosen);
    box.appendChild(row);
    document.body.appendChild(box);
    if (from) box.focus();  // opened by the visitor: their keyboard is now in the banner
  }

  // The language the texts were shown in ("nl" for an "nl-BE" visitor when the manifest has
  // only "nl"), so the ledger hashes the very text the visitor read.
  function shownIn() {
    var langs = purposes.map(function (p) { return p.language; }).filter(Boolean);
    return langs.length && langs.every(function (l) { return l === langs[0]; })
      ? langs[0] : asked;
  }

  function all(value) {
    var choices = {};
    purposes.forEach(function (p) { choices[p.id] = value; });
    return choices;
  }

  window.lawfulConsent = { open: function () { open(document.activeElement); },
                           allowed: allowed, choice: load };
  document.addEventListener("click", function (event) {
    var target = event.target.closest && event.target.closest("[data-lawful-consent-open]");
    if (target) { event.preventDefault(); open(target); }
  });

  function start(list) {
    purposes = (Array.isArray(list) ? list : []).filter(function (p) {
      return only.length ? only.indexOf(p.id) >= 0 : p.channel === "cookie";
    });
    ready = true;
    var saved = load();
    if (saved && saved.pending && current(saved)) post(saved);  // the ledger missed it
    if (wanted || (purposes.length && !current(saved))) open(wanted ? document.activeElement : null);
    document.dispatchEvent(new CustomEvent("lawful:ready"));
  }

  var loaded = fetch(base + "/v1/consent/purposes?lang=" + encodeURIComponent(asked))
    .then(function (r) { return r.ok ? r.json() : []; })
    .catch(function () { return []; });
  loaded.then(function (list) {
    if (document.readyState === "loading") {
      document.addEventListener("DOMContentLoaded", function () { start(list); });
    } else {
      start(list);
    }
  });
})();
