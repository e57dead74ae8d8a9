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

  // Confirm destructive buttons that carry data-confirm (the server still
  // asks for its own confirmation where it matters).
  document.addEventListener("submit", function (event) {
    var button = event.submitter;
    var message = (button && button.dataset.confirm) || event.target.dataset.confirm;
    if (message && !window.confirm(message)) event.preventDefault();
  });
})();
