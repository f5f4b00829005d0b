// The edit page: the clip plays in a loop between its start and end, next to its texts;
// Enter saves, Esc cancels, Alt+Up/Down goes to the previous/next clip's edit. Where the
// browser cannot play the file after all, the clip's frames are shown instead.
(function () {
  "use strict";
  var player = document.getElementById("clip-player");
  var frames = document.getElementById("clip-frames");
  var form = document.getElementById("edit-form");
  var INSIDE = 0.001;  // a millisecond into the clip: its own caption, not the one before

  function showFrames() {
    if (player) { player.hidden = true; }
    var note = document.getElementById("unplayable");
    if (note) { note.hidden = false; }
    if (frames) {
      frames.hidden = false;
      frames.querySelectorAll("img[data-src]").forEach(function (img) {
        img.src = img.dataset.src;
      });
    }
  }

  if (player) {
    var start = parseFloat(player.dataset.start);
    var end = parseFloat(player.dataset.end);
    var FRAME = 0.05;  // loop a frame before the end: the next clip's first frame never shows
    var loop = function (now) {
      if (now >= end - FRAME || now < start - FRAME) {
        player.currentTime = start + INSIDE;
        if (player.paused) { player.play().catch(function () {}); }
      }
    };
    player.addEventListener("error", showFrames);
    player.addEventListener("loadedmetadata", function () {
      if (player.textTracks.length) { player.textTracks[0].mode = "showing"; }
      if (player.currentTime < start || player.currentTime >= end) {
        player.currentTime = start + INSIDE;
      }
    });
    // Each frame shown where the browser says so (timeupdate comes only every 250 ms or so,
    // too late to stop at the end); timeupdate as well, for browsers without it.
    if (player.requestVideoFrameCallback) {
      var onFrame = function (_now, frame) {
        loop(frame.mediaTime);
        player.requestVideoFrameCallback(onFrame);
      };
      player.requestVideoFrameCallback(onFrame);
    }
    player.addEventListener("timeupdate", function () { loop(player.currentTime); });
    player.addEventListener("pause", function () {  // the #t= end pauses it: loop on
      if (player.currentTime >= end - 0.1) { loop(player.currentTime); }
    });
  }

  function go(id) {
    var link = document.getElementById(id);
    if (link) { window.location.href = link.href; }
  }

  document.addEventListener("keydown", function (event) {
    if (event.key === "Escape") {
      event.preventDefault();
      go("cancel");
    } else if (event.key === "Enter" && !event.shiftKey && event.target.tagName === "TEXTAREA") {
      event.preventDefault();  // a caption is one line: Enter saves, as in the answer fields
      form.requestSubmit();
    } else if (event.altKey && event.key === "ArrowUp") {
      event.preventDefault();
      go("previous-clip");
    } else if (event.altKey && event.key === "ArrowDown") {
      event.preventDefault();
      go("next-clip");
    }
  });
})();
