// The call page's only script: moves the timeline's cursor with the whole-call playback, and
// seeks the playback when the timeline is clicked. The page reads and plays without it.
"use strict";
document.addEventListener("DOMContentLoaded", () => {
  const audio = document.getElementById("whole-call");
  const svg = document.getElementById("timeline");
  const cursor = document.getElementById("cursor");
  if (!audio || !svg || !cursor) return;
  const x0 = Number(svg.dataset.x0);
  const perS = Number(svg.dataset.perS);
  const move = () => {
    const x = String(x0 + audio.currentTime * perS);
    cursor.setAttribute("x1", x);
    cursor.setAttribute("x2", x);
    cursor.classList.add("playing");
  };
  audio.addEventListener("timeupdate", move);
  audio.addEventListener("seeked", move);
  svg.addEventListener("click", (event) => {
    const point = svg.createSVGPoint();
    point.x = event.clientX;
    point.y = event.clientY;
    const at = point.matrixTransform(svg.getScreenCTM().inverse());
    const t = (at.x - x0) / perS;
    if (t >= 0 && (!audio.duration || t <= audio.duration)) {
      audio.currentTime = t;
      move();
    }
  });
});
