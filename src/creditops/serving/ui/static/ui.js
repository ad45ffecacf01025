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
      clickable(el);
    });
  }

  // A chart inside [data-click-url] loads, on a click on a point, the fragment for that point
  // (its customdata: [name, index]) into [data-click-target]; the drift heatmap uses it.
  function clickable(el) {
    var host = el.closest && el.closest("[data-click-url]");
    if (!host || el.dataset.clickBound || !window.htmx) { return; }
    el.dataset.clickBound = "1";
    el.on("plotly_click", function (data) {
      var point = data && data.points && data.points[0];
      if (!point || !point.customdata) { return; }
      var url = host.getAttribute("data-click-url") + "?feature=" +
        encodeURIComponent(point.customdata[0]) + "&window=" + encodeURIComponent(point.customdata[1]);
      window.htmx.ajax("GET", url, { target: host.getAttribute("data-click-target"), swap: "outerHTML" });
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

  // An upload larger than the server accepts is refused here, before it is sent: the server
  // refuses it too, but a browser may report a refused half-sent upload as a network error.
  function oversized(input) {
    var file = input.files && input.files[0];
    var limit = Number(input.getAttribute("data-max-bytes"));
    var message = document.getElementById(input.getAttribute("data-size-error"));
    var tooBig = !!(file && limit && file.size > limit);
    if (message) {
      message.textContent = tooBig ? input.getAttribute("data-size-message") : "";
      message.hidden = !tooBig;
    }
    input.setAttribute("aria-invalid", tooBig ? "true" : "false");
    return tooBig;
  }

  document.addEventListener("change", function (event) {
    var el = event.target;
    if (el.matches && el.matches("input[type=file][data-max-bytes]")) { oversized(el); }
  });
  document.addEventListener("htmx:beforeRequest", function (event) {
    var form = event.detail.elt;
    var input = form.querySelector && form.querySelector("input[type=file][data-max-bytes]");
    if (input && oversized(input)) { event.preventDefault(); input.focus(); }
  });
})();
