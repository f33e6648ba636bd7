// Runs first: any script error or console.error is written into the page (#errors) and sets the
// body's data-status to "error", so a broken report says so instead of staying silently blank.
(function () {
  var pending = [];
  function show(message) {
    var box = document.getElementById("errors");
    if (!box || !document.body) { pending.push(message); return; }
    box.hidden = false;
    box.textContent += message + "\n";
    document.body.setAttribute("data-status", "error");
  }
  window.reportError = show;
  window.onerror = function (message, source, line) {
    show("script error: " + message + " (line " + line + ")");
  };
  var consoleError = console.error;
  console.error = function () {
    show("console.error: " + Array.prototype.join.call(arguments, " "));
    consoleError.apply(console, arguments);
  };
  document.addEventListener("DOMContentLoaded", function () { pending.splice(0).forEach(show); });
})();
