// Keyboard shortcuts on a review claim's page (templates/review/claim.html), for a reviewer
// working through the queue: a approves, r goes to the reason (Enter there rejects, as any
// form), q goes back to the queue. Without this script the same buttons work as they are.
(function () {
  "use strict";
  var approve = document.getElementById("approve");
  var reason = document.getElementById("reason");
  if (!approve || !reason) { return; }
  var keys = document.getElementById("keys");
  if (keys) { keys.hidden = false; }  // told only where they work
  document.addEventListener("keydown", function (event) {
    if (event.defaultPrevented || event.ctrlKey || event.metaKey || event.altKey || event.repeat) { return; }
    var target = event.target;
    var typing = target && (target.isContentEditable || /^(INPUT|TEXTAREA|SELECT)$/.test(target.tagName));
    if (typing) {
      if (event.key === "Escape") { target.blur(); }
      return;
    }
    if (event.key === "a") {
      event.preventDefault();
      approve.disabled = true;  // one keystroke, one decision
      approve.form.submit();
    } else if (event.key === "r") {
      event.preventDefault();
      reason.focus();
    } else if (event.key === "q") {
      event.preventDefault();
      window.location.assign("/review/");
    }
  });
}());
