// creditops dashboard: draws every chart whose figure the page carries in data-figure, on load
// and after each htmx swap. No inline scripts anywhere (the Content-Security-Policy forbids
// them), so this file is the only behaviour the pages have besides htmx.
(function () {
  "use strict";
  var config = { displaylogo: false, responsive: true, modeBarButtonsToRemove: ["lasso2d", "select2d"] };

  function draw(root) {
    if (!window.Plotly) { return; }
    root.querySelectorAll("[data-figure]").forEach(function (el) {
      var figure;
      try { figure = JSON.parse(el.getAttribute("data-figure")); } catch (e) { return; }
      window.Plotly.react(el, figure.data || [], figure.layout || {}, config);
    });
  }

  document.addEventListener("DOMContentLoaded", function () { draw(document); });
  document.addEventListener("htmx:afterSettle", function (event) { draw(event.target); });

  // A slider shows its value next to it as it moves (the figures follow through htmx).
  document.addEventListener("input", function (event) {
    var el = event.target;
    if (el.matches && el.matches("input[type=range][data-output]")) {
      var out = document.getElementById(el.getAttribute("data-output"));
      if (out) { out.textContent = (Number(el.value) * (el.dataset.scale ? Number(el.dataset.scale) : 1)).toFixed(el.dataset.digits || 1) + (el.dataset.unit || ""); }
    }
  });
})();
