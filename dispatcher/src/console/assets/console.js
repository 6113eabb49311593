// The console's only script: pages marked data-refresh fetch themselves again every few
// seconds and swap their <main>, unless paused (the button, remembered for the tab), the
// tab is hidden, or the operator is filling in a form. Without it every page still works.
(function () {
  "use strict";
  var main = document.querySelector("main[data-refresh]");
  var button = document.getElementById("refresh-toggle");
  if (!main || !button) return;
  var every = Math.max(2, parseInt(main.getAttribute("data-refresh"), 10) || 5) * 1000;
  var paused = sessionStorage.getItem("visitas-refresh-paused") === "1";
  function label() { button.textContent = paused ? "Resume auto-refresh" : "Pause auto-refresh"; }
  button.hidden = false;
  label();
  button.addEventListener("click", function () {
    paused = !paused;
    sessionStorage.setItem("visitas-refresh-paused", paused ? "1" : "0");
    label();
  });
  function busy() {
    var a = document.activeElement;
    if (a && main.contains(a) && /^(INPUT|SELECT|TEXTAREA)$/.test(a.tagName)) return true;
    return main.querySelector("input[type=checkbox]:checked") !== null;
  }
  setInterval(function () {
    if (paused || document.hidden || busy()) return;
    fetch(location.href, { credentials: "same-origin" })
      .then(function (r) { return r.ok ? r.text() : null; })
      .then(function (text) {
        if (!text) return;
        var next = new DOMParser().parseFromString(text, "text/html").querySelector("main");
        if (next) main.innerHTML = next.innerHTML;
      })
      .catch(function () {});
  }, every);
})();
