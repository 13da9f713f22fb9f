/* lawful cookie banner: one script tag, no dependencies.
 *
 *   <script src="https://LAWFUL/v1/consent/banner.js" data-site="shop.example" defer></script>
 *   <a href="#" data-lawful-consent-open>Cookie settings</a>
 *
 * Shows the manifest's cookie purposes in the visitor's language, with "Accept all" and
 * "Reject all" equally prominent; stores the choice with its audit id in localStorage and
 * posts it to lawful's consent ledger. window.lawfulConsent.open() reopens it;
 * window.lawfulConsent.allowed(purpose) tells the page what it may load.
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
  var lang = (navigator.language || "en").toLowerCase();
  var words = WORDS[lang] || WORDS[lang.split("-")[0]] || WORDS.en;
  var purposes = [];
  var box = null;

  function uuid() {
    if (window.crypto && crypto.randomUUID) return crypto.randomUUID();
    return "v" + Date.now().toString(36) + Math.random().toString(36).slice(2, 12);
  }
  function load() {
    try { return JSON.parse(localStorage.getItem(KEY) || "null"); } catch (e) { return null; }
  }
  function current(saved) {
    return saved && purposes.every(function (p) {
      return saved.versions && saved.versions[p.id] === p.version;
    });
  }
  function allowed(id) {
    var saved = load();
    return !!(saved && saved.choices && saved.choices[id] && current(saved));
  }

  function save(choices) {
    var saved = load() || {};
    var record = {
      visitor_id: saved.visitor_id || uuid(), audit_id: uuid(), choices: choices,
      versions: {}, language: lang, at: new Date().toISOString()
    };
    purposes.forEach(function (p) { record.versions[p.id] = p.version; });
    localStorage.setItem(KEY, JSON.stringify(record));
    close();
    document.dispatchEvent(new CustomEvent("lawful:consent", { detail: record }));
    return fetch(base + "/v1/consent/choices", {
      method: "POST", headers: { "Content-Type": "application/json" }, keepalive: true,
      body: JSON.stringify({
        visitor_id: record.visitor_id, audit_id: record.audit_id, choices: choices,
        versions: record.versions, language: lang.split("-")[0], site: site,
        client_event_id: record.audit_id
      })
    }).catch(function () { /* the choice stands locally; the ledger gets the next one */ });
  }

  function close() { if (box) { box.remove(); box = null; } }

  function el(tag, attrs, text) {
    var node = document.createElement(tag);
    Object.keys(attrs || {}).forEach(function (k) { node.setAttribute(k, attrs[k]); });
    if (text) node.textContent = text;
    return node;
  }

  function open() {
    close();
    var saved = load();
    box = el("div", { role: "dialog", "aria-modal": "false", "aria-labelledby": "lawful-title",
                      id: "lawful-banner", lang: lang });
    box.style.cssText = "position:fixed;left:0;right:0;bottom:0;z-index:2147483647;" +
      "background:#fff;color:#111;border-top:2px solid #333;padding:16px;" +
      "font:15px/1.4 system-ui,sans-serif;box-shadow:0 -2px 12px rgba(0,0,0,.2)";
    box.appendChild(el("h2", { id: "lawful-title", style: "margin:0 0 6px;font-size:18px" },
                       words.title));
    box.appendChild(el("p", { style: "margin:0 0 8px" }, words.intro));
    purposes.forEach(function (p) {
      var label = el("label", { style: "display:block;margin:4px 0" });
      var box_ = el("input", { type: "checkbox", name: p.id, "data-purpose": p.id });
      box_.checked = !!(saved && saved.choices && saved.choices[p.id]);
      label.appendChild(box_);
      label.appendChild(document.createTextNode(" " + p.name + ": " + (p.text || "")));
      box.appendChild(label);
    });
    var row = el("div", { style: "display:flex;gap:12px;flex-wrap:wrap;margin-top:10px" });
    // Accept and reject look the same: same size, same colours, same weight.
    var style = "flex:1 1 160px;padding:10px 16px;font:inherit;font-weight:600;" +
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
    row.appendChild(reject); row.appendChild(accept); row.appendChild(chosen);
    box.appendChild(row);
    document.body.appendChild(box);
  }

  function all(value) {
    var choices = {};
    purposes.forEach(function (p) { choices[p.id] = value; });
    return choices;
  }

  window.lawfulConsent = { open: open, allowed: allowed, choice: load };
  document.addEventListener("click", function (event) {
    var target = event.target.closest && event.target.closest("[data-lawful-consent-open]");
    if (target) { event.preventDefault(); open(); }
  });

  fetch(base + "/v1/consent/purposes?lang=" + encodeURIComponent(lang))
    .then(function (r) { return r.json(); })
    .then(function (list) {
      purposes = list.filter(function (p) {
        return only.length ? only.indexOf(p.id) >= 0 : p.channel === "cookie";
      });
      if (purposes.length && !current(load())) open();
      document.dispatchEvent(new CustomEvent("lawful:ready"));
    });
})();
