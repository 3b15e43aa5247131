// Charts on the insight dashboards. Each <canvas data-chart="bar|line" data-source="ID"> is
// drawn from the JSON that the page put in <script id="ID" type="application/json"> (Django's
// json_script). Every chart has a table with the same numbers next to it, so the page says
// everything without this file.
(function () {
  "use strict";

  var palette = ["#1f5fbf", "#9aa6b8", "#1f7a4d", "#b3261e"];
  var reduceMotion = window.matchMedia && window.matchMedia("(prefers-reduced-motion: reduce)").matches;

  function percentTick(value) { return value + "%"; }

  function draw(canvas) {
    if (!window.Chart) return;
    var source = document.getElementById(canvas.dataset.source);
    if (!source) return;
    var spec = JSON.parse(source.textContent);
    var existing = window.Chart.getChart(canvas);
    if (existing) existing.destroy();
    var line = canvas.dataset.chart === "line";
    // With the error-bars plugin loaded, each value carries its 95% interval as whiskers.
    var whiskers = !!window.ChartErrorBars && spec.datasets.some(function (set) { return set.low; });
    var axis = line ? "y" : "x";
    var datasets = spec.datasets.map(function (set, i) {
      var data = set.data;
      if (whiskers && set.low) {
        data = set.data.map(function (value, j) {
          // The plugin reads every point as an object; a gap is one with no value.
          var point = {};
          point[axis] = value;
          point[axis + "Min"] = value === null ? null : set.low[j];
          point[axis + "Max"] = value === null ? null : set.high[j];
          return point;
        });
      }
      return {
        label: set.label,
        data: data,
        backgroundColor: palette[i % palette.length],
        borderColor: palette[i % palette.length],
        borderWidth: line ? 2 : 0,
        spanGaps: false,
        pointRadius: line ? 3 : 0,
      };
    });
    new window.Chart(canvas, {
      type: (line ? "line" : "bar") + (whiskers ? "WithErrorBars" : ""),
      data: { labels: spec.labels, datasets: datasets },
      options: {
        responsive: true,
        maintainAspectRatio: false,
        animation: reduceMotion ? false : { duration: 300 },
        indexAxis: line ? "x" : "y",
        scales: spec.percent
          ? (line
            ? { y: { min: 0, max: 100, ticks: { callback: percentTick } } }
            : { x: { min: 0, max: 100, ticks: { callback: percentTick } } })
          : {},
        plugins: {
          legend: { display: datasets.length > 1, position: "bottom" },
          tooltip: {
            callbacks: {
              label: function (ctx) {
                var value = line ? ctx.parsed.y : ctx.parsed.x;
                if (value === null || value === undefined) return ctx.dataset.label + ": not enough data";
                var text = ctx.dataset.label + ": " + value + (spec.percent ? "%" : "");
                var raw = ctx.raw || {};
                if (raw[axis + "Min"] !== undefined && raw[axis + "Min"] !== null) {
                  text += " (95% interval " + raw[axis + "Min"] + "–" + raw[axis + "Max"] + "%)";
                }
                return text;
              },
            },
          },
        },
      },
    });
  }

  function drawAll(root) {
    (root || document).querySelectorAll("canvas[data-chart]").forEach(draw);
  }

  // Charts in content that htmx is about to replace are destroyed so they do not leak.
  document.addEventListener("htmx:beforeSwap", function (event) {
    if (!window.Chart || !event.detail.target) return;
    event.detail.target.querySelectorAll("canvas[data-chart]").forEach(function (canvas) {
      var chart = window.Chart.getChart(canvas);
      if (chart) chart.destroy();
    });
  });

  // htmx:load fires for the page and for every piece of content htmx swaps in.
  if (window.htmx) {
    document.addEventListener("htmx:load", function (event) { drawAll(event.target); });
  } else {
    document.addEventListener("DOMContentLoaded", function () { drawAll(document); });
  }
})();
