/* Workstream console: draws the dashboard's charts from the JSON blocks the server renders
   (<script type="application/json">, never executed) and redraws them in place when htmx swaps
   in fresh data, so nothing flickers; holds back a poll while someone is using a form inside
   the fragment it would replace; follows a session's end to the login once. No inline script anywhere (Content-Security-Policy). */
(function () {
  "use strict";

  var charts = {};
  var COLOURS = ["#1f5f8b", "#1c7c3c", "#a76300", "#b42318", "#6941c6", "#667085"];

  function readData(id) {
    var el = id && document.getElementById(id);
    if (!el) { return null; }
    try { return JSON.parse(el.textContent); } catch (e) { return null; }
  }

  function datasets(kind, data) {
    return data.datasets.map(function (d, i) {
      var colour = d.colour || COLOURS[i % COLOURS.length];
      var set = { label: d.label, data: d.data, backgroundColor: colour, borderColor: colour };
      if (kind === "line") { set.fill = false; set.tension = 0.2; set.pointRadius = 2; }
      if (d.type) { set.type = d.type; }
      return set;
    });
  }

  function config(canvas, data) {
    var kind = canvas.dataset.kind || "bar";
    return {
      type: kind,
      data: { labels: data.labels, datasets: datasets(kind, data) },
      options: {
        animation: false,
        responsive: true,
        maintainAspectRatio: false,
        indexAxis: canvas.dataset.horizontal === "true" ? "y" : "x",
        scales: { x: { stacked: canvas.dataset.stacked === "true" }, y: { beginAtZero: true, stacked: canvas.dataset.stacked === "true", ticks: { precision: 0 } } },
        plugins: { legend: { position: "bottom" } }
      }
    };
  }

  function draw() {
    if (typeof window.Chart === "undefined") { return; }
    document.querySelectorAll("canvas[data-chart]").forEach(function (canvas) {
      var name = canvas.dataset.chart;
      var data = readData(canvas.dataset.source);
      if (!data) { return; }
      var chart = charts[name];
      if (chart && chart.canvas === canvas) {
        var kind = canvas.dataset.kind || "bar";
        chart.data.labels = data.labels;
        chart.data.datasets = datasets(kind, data);
        chart.update("none");
      } else {
        if (chart) { chart.destroy(); }
        charts[name] = new window.Chart(canvas, config(canvas, data));
      }
      canvas.dataset.drawn = String(Number(canvas.dataset.drawn || "0") + 1);
    });
  }

  // A poll would replace the form someone is filling in (a reassign select, a reason): wait.
  document.addEventListener("htmx:beforeRequest", function (evt) {
    var target = evt.detail && evt.detail.target;
    var busy = document.activeElement;
    var polling = evt.detail && evt.detail.requestConfig && evt.detail.requestConfig.verb === "get";
    if (polling && target && busy && busy !== document.body && target.contains(busy) &&
        (busy.tagName === "SELECT" || busy.tagName === "INPUT" || busy.tagName === "TEXTAREA")) {
      evt.preventDefault();
    }
  });

  // The session ended: every polling fragment answers with HX-Redirect to the login. Follow the
  // first one only; a second `location.href = …` would abort the navigation already under way.
  var leaving = false;
  document.addEventListener("htmx:beforeOnLoad", function (evt) {
    var xhr = evt.detail && evt.detail.xhr;
    if (leaving) { evt.preventDefault(); return; }
    if (xhr && xhr.getResponseHeader("HX-Redirect")) { leaving = true; }
  });
  document.addEventListener("htmx:beforeRequest", function (evt) {
    if (leaving) { evt.preventDefault(); }
  });

  document.addEventListener("DOMContentLoaded", draw);
  document.addEventListener("htmx:afterSettle", draw);
})();
