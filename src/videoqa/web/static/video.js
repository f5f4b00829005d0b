// The video page: start at ?t= (or #t=), seek when a clip is clicked, move the play head along
// the timeline, and show the note instead of a broken player when the browser cannot play.
(function () {
  "use strict";
  var player = document.getElementById("player");
  var note = document.getElementById("unplayable");
  var heads = document.querySelectorAll(".timeline .playhead");

  function timeFromUrl() {
    var value = new URLSearchParams(window.location.search).get("t");
    if (value === null) {
      var match = window.location.hash.match(/(?:^#|&)t=([0-9.]+)/);
      value = match ? match[1] : null;
    }
    var time = parseFloat(value);
    return isFinite(time) && time >= 0 ? time : null;
  }

  // A moment is a clip's start, where the cue before it ends: Chromium shows a cue until its
  // end inclusive, so at exactly that time both captions would show. A millisecond in, only
  // the clip's own does (no frame changes within a millisecond at any usual frame rate).
  var INSIDE = 0.001;

  function seek(time) {
    var target = Math.min(time + INSIDE, isFinite(player.duration) ? player.duration : Infinity);
    function go() {  // the src's #t= fragment may have taken the player there already
      if (Math.abs(player.currentTime - target) > 0.0005) { player.currentTime = target; }
    }
    if (player.readyState >= 1) {
      go();
    } else {
      player.addEventListener("loadedmetadata", go, { once: true });
    }
  }

  function movePlayheads() {
    var duration = player.duration;
    if (!isFinite(duration) || duration <= 0) { return; }
    var left = (100 * player.currentTime / duration).toFixed(3) + "%";
    heads.forEach(function (head) { head.hidden = false; head.style.left = left; });
  }

  // e: edit the clip at the play head; ] and [: the next and previous clip's edit.
  document.addEventListener("keydown", function (event) {
    var tag = event.target.tagName;
    if (event.ctrlKey || event.metaKey || event.altKey || tag === "INPUT" || tag === "TEXTAREA"
        || tag === "SELECT") { return; }
    var step = { "e": 0, "]": 1, "[": -1 }[event.key];
    if (step === undefined) { return; }
    var rows = Array.prototype.slice.call(document.querySelectorAll("tr.clip"));
    if (!rows.length) { return; }
    var now = player && !player.hidden ? player.currentTime : (timeFromUrl() || 0);
    var current = 0;
    rows.forEach(function (row, position) {
      if (parseFloat(row.dataset.clipStart) <= now + 0.0005) { current = position; }
    });
    var target = rows[Math.min(Math.max(current + step, 0), rows.length - 1)];
    var link = target.querySelector("a.edit");
    if (link) { event.preventDefault(); window.location.href = link.href; }
  });

  if (!player) { return; }
  player.addEventListener("error", function () {
    player.hidden = true;
    if (note) { note.hidden = false; }
  });
  if (player.textTracks.length) { player.textTracks[0].mode = "showing"; }
  var start = timeFromUrl();
  if (start !== null) { seek(start); }
  player.addEventListener("timeupdate", movePlayheads);
  player.addEventListener("seeked", movePlayheads);

  document.querySelectorAll("[data-start]").forEach(function (link) {
    if (link === player) { return; }
    link.addEventListener("click", function (event) {
      if (player.hidden) { return; }  // no player: follow the link (the page at that time)
      event.preventDefault();
      var time = parseFloat(link.dataset.start);
      seek(time);
      window.history.replaceState(null, "", "?t=" + link.dataset.start);
      player.focus();
    });
  });
})();
