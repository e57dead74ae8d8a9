// Small progressive enhancements; every page works without this file.
(function () {
  "use strict";

  // Keep a tailing log scrolled to its end, unless the reader scrolled up.
  function stickToBottom(list) {
    if (!list) return;
    var nearEnd = list.scrollHeight - list.scrollTop - list.clientHeight < 80;
    if (nearEnd || !list.dataset.touched) list.scrollTop = list.scrollHeight;
  }

  document.addEventListener("scroll", function (event) {
    var el = event.target;
    if (el && el.classList && el.classList.contains("log")) {
      el.dataset.touched = "1";
    }
  }, true);

  document.addEventListener("htmx:afterSettle", function (event) {
    var target = event.detail && event.detail.target;
    if (!target) return;
    var log = target.closest ? target.closest(".log") : null;
    stickToBottom(log || (target.querySelector && target.querySelector(".log")));
  });

  // A form marked data-swap-400 shows its 400 answer: the fields' errors.
  document.addEventListener("htmx:beforeSwap", function (event) {
    var elt = event.detail && event.detail.requestConfig && event.detail.requestConfig.elt;
    if (event.detail.xhr.status === 400 && elt && elt.closest && elt.closest("[data-swap-400]")) {
      event.detail.shouldSwap = true;
      event.detail.isError = false;
    }
  });

  // HTMX leaves error answers unswapped: say so instead of doing nothing.
  document.addEventListener("htmx:responseError", function (event) {
    var region = document.getElementById("htmx-error");
    if (!region) return;
    var status = event.detail && event.detail.xhr ? event.detail.xhr.status : 0;
    var reasons = {403: "You may not do that.", 404: "It no longer exists, or you may not see it.",
                   409: "It changed meanwhile; reload the page.", 429: "Too many requests; wait a moment."};
    region.textContent = (reasons[status] || "That did not work (" + status + ").") + " ";
    region.hidden = false;
  });
  document.addEventListener("htmx:sendError", function () {
    var region = document.getElementById("htmx-error");
    if (region) { region.textContent = "The server did not answer; live updates paused until it does."; region.hidden = false; }
  });
  document.addEventListener("htmx:afterRequest", function (event) {
    var region = document.getElementById("htmx-error");
    if (region && event.detail && event.detail.successful) region.hidden = true;
  });

  // Without htmx (its file missing on the server, or blocked) nothing live
  // on the page would ever update: say so instead of showing stale states.
  if (!window.htmx && document.querySelector("[hx-get], [hx-post], [hx-trigger]")) {
    var banner = document.getElementById("htmx-error");
    if (banner) {
      banner.textContent = "Live updates are off: this page's script (htmx) did not load. " +
        "Reload the page; if this stays, the server is missing its front-end assets (run npm ci there).";
      banner.hidden = false;
    }
  }

  // Confirm destructive buttons that carry data-confirm (the server still
  // asks for its own confirmation where it matters).
  document.addEventListener("submit", function (event) {
    var button = event.submitter;
    var message = (button && button.dataset.confirm) || event.target.dataset.confirm;
    if (message && !window.confirm(message)) event.preventDefault();
  });
})();
